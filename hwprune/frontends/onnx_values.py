"""What the ONNX walk knows about each tensor, and the IR layers it has made so far.

ONNX tensors are channels-first with a batch axis; IR tensors are channels-last without
one. A ``Value`` says how an ONNX tensor sits in the IR tensor that holds it:

- ``flat``: a ``(N, F)`` tensor; ``perm`` (when not None) is the order of a channels-first
  tensor flattened channels-last: IR feature ``i`` is ONNX feature ``perm[i]``, so the
  Gemm or MatMul that reads it takes its weight columns in that order;
- ``cf``: ``(N, C, *S)`` held as the IR's ``(*S, C)`` (``(C,)`` after a global pooling);
- ``cl``: ``(N, *S, C)`` held as it is (a channels-last input before its Transpose, or a
  tensor transposed to channels-last before Flatten).

Besides the layout, a value may carry what its next layer must absorb: a BatchNorm that had
no Dense or conv before it to fold into (``affine``; a reader that cannot absorb it gets an
IR BatchNorm layer before it, ``Context.normalize``), zero padding for the next conv
(``pad``), or the trailing unit axes an Unsqueeze added (``unsqueezed``). Several ONNX
tensors may share one IR tensor (Identity, Dropout, a Transpose of the layout): ``sole``
says that nothing else reads the IR tensor, so a BatchNorm or a bias may change the layer
that made it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.errors import ShapeError, UnsupportedLayerError
from hwprune.frontends.onnx_graph import label
from hwprune.ir.graph import INPUT, is_c_identifier
from hwprune.ir.activations import BatchNorm
from hwprune.ir.layers import Layer, Reshape


@dataclass(frozen=True, eq=False)
class Value:
    ir: str
    rank: int  # the ONNX rank, batch axis included
    layout: str  # "flat", "cf" or "cl"
    perm: Optional[np.ndarray] = None
    affine: Optional[tuple] = None  # (where, scale, shift) per ONNX channel (axis 1), waiting for a Dense or conv
    pad: Optional[tuple] = None  # IR (before, after) pairs waiting for a conv
    unsqueezed: tuple = ()
    sole: bool = True

    def but(self, **changes) -> "Value":
        return dataclasses.replace(self, **changes)


@dataclass
class Context:
    """What a handler sees: the file, constants, static ONNX shapes (None for an unknown
    dimension), the value of every tensor so far, and the IR layers made from them."""

    path: Path
    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple]
    readers: dict[str, int] = field(default_factory=dict)  # how many nodes (or graph outputs) read a tensor
    values: dict[str, Value] = field(default_factory=dict)
    layers: list = field(default_factory=list)
    ir_shapes: dict[str, tuple] = field(default_factory=dict)
    names: set = field(default_factory=lambda: {INPUT})
    index: int = 0  # the current node's position in the file
    batch: Optional[int] = None  # the batch size the graph input declares (None: symbolic)

    # -- reading a node's inputs ---------------------------------------------------------------
    def const(self, node, index: int) -> Optional[np.ndarray]:
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise self.fail(node, f"input {name!r} must be a constant (an initializer, or computed from them)")
        return self.constants[name]

    def is_const(self, node, index: int) -> bool:
        return node.input[index] in self.constants

    def value(self, node, index: int = 0, plain: bool = True) -> Value:
        """The value of input ``index``; with ``plain`` one that carries nothing for its reader
        to absorb (a pending BatchNorm, padding or Unsqueeze is an error naming the node)."""
        name = node.input[index]
        if name in self.constants:
            raise self.fail(node, f"input {name!r} is a constant where hwprune expects a computed tensor")
        value = self.values[name]
        if plain:
            if value.affine is not None:
                value = self.normalize(value, self._name(node, "batchnorm", "_bn"))
            self.require_plain(node, value)
        return value

    def normalize(self, value: Value, name: str) -> Value:
        """``value`` with the BatchNorm waiting on it made an IR BatchNorm layer (a reader that
        no Dense or conv is: an activation, an Add, a padded conv, a graph output)."""
        where, scale, shift = value.affine
        ir_shape = self.ir_shapes[value.ir]
        if value.layout == "cl" or not ir_shape or ir_shape[-1] != scale.size:
            raise UnsupportedLayerError(f"{self.path}: the BatchNormalization {where} acts on an axis hwprune does "
                                        f"not hold last (tensor shape {ir_shape}); it cannot be kept as a layer")
        layer = BatchNorm(name, scale=scale, bias=shift, inputs=(value.ir,))
        self.layers.append(layer)
        self.ir_shapes[name] = tuple(ir_shape)
        return value.but(ir=name, affine=None, sole=True)

    def require_plain(self, node, value: Value) -> None:
        if value.affine is not None:
            raise self.fail(node, f"the BatchNormalization {value.affine[0]} before it can fold only into a Gemm, "
                                  "MatMul or Conv that reads it (through Identity, Dropout or Flatten)")
        if value.pad is not None:
            raise self.fail(node, "a Pad before it is folded into a Conv right after it only")
        if value.unsqueezed:
            raise self.fail(node, "only a BatchNormalization may come between an Unsqueeze and its Squeeze")

    def sole_reader(self, node, value: Value, index: int = 0) -> bool:
        """Whether this node is the only reader of ``value`` (its input ``index``) and so of its IR tensor."""
        return value.sole and self.readers.get(node.input[index], 0) == 1

    def shape(self, node, index: int = 0) -> Optional[tuple]:
        """The ONNX input shape: declared in the file, else the IR shape in ONNX order."""
        declared = self.shapes.get(node.input[index])
        if declared is not None and all(d is not None for d in declared[1:]):
            return declared
        value = self.values.get(node.input[index])
        if value is None:
            return declared
        return (1, *self.onnx_dims(value))

    def onnx_dims(self, value: Value) -> tuple:
        """The ONNX dimensions of a value without the batch axis, from its IR shape."""
        ir = self.ir_shapes[value.ir]
        if value.layout == "cf":
            dims = (ir[-1], *ir[:-1]) if len(ir) == value.rank - 1 else (ir[-1], *([1] * (value.rank - 2)))
        else:
            dims = ir
        return (*dims, *([1] * len(value.unsqueezed)))

    def ir_shape(self, value: Value) -> tuple:
        return self.ir_shapes[value.ir]

    # -- making layers -------------------------------------------------------------------------
    def emit(self, node, layer: Layer, inputs: list[Value], suffix: str = "", **value) -> Value:
        """Append ``layer`` reading ``inputs``, named after the node (and ``suffix``); its
        output value (layout from ``value``, defaulting to the first input's layout and rank)."""
        layer = layer.with_(name=self._name(node, layer.kind, suffix), inputs=tuple(v.ir for v in inputs))
        try:
            shape = tuple(layer.output_shape(*(self.ir_shapes[v.ir] for v in inputs)))
        except ShapeError as exc:
            raise self.fail(node, str(exc)) from None
        self.layers.append(layer)
        self.ir_shapes[layer.name] = shape
        rank = value.pop("rank", inputs[0].rank)
        layout = value.pop("layout", inputs[0].layout)
        return Value(layer.name, rank, layout, **value)

    def replace_layer(self, name: str, layer: Layer) -> None:
        index = next(i for i, l in enumerate(self.layers) if l.name == name)
        self.layers[index] = layer

    def producer(self, value: Value) -> Optional[Layer]:
        return next((l for l in self.layers if l.name == value.ir), None)

    def reshaped(self, node, value: Value, shape: tuple) -> Value:
        """``value`` with its IR tensor reshaped (a per-channel ``(N, C, 1, 1)`` tensor held as
        ``(C,)`` where a conv needs ``(1, 1, C)``, or the other way round)."""
        if tuple(self.ir_shapes[value.ir]) == tuple(shape):
            return value
        return self.emit(node, Reshape("reshape", target_shape=shape), [value], suffix="_reshape", sole=True)

    def _name(self, node, kind: str, suffix: str = "") -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in node.name).strip("_")
        return self.unique((base if base and is_c_identifier(base) else f"{kind}_{self.index}") + suffix)

    def unique(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3``, ...: a layer name not taken yet."""
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    # -- messages ------------------------------------------------------------------------------
    def where(self, node) -> str:
        return f"{self.path}: {label(node, self.index)}"

    def fail(self, node, why: str):
        return UnsupportedLayerError(f"{self.where(node)}: {why}")
