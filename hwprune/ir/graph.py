"""A model as a graph of IR layers, in topological order, with its shapes checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Optional

import numpy as np

from hwprune.errors import DataError, ModelError, ShapeError
from hwprune.ir.names import C_KEYWORDS, check_c_name, is_c_identifier  # noqa: F401  (re-exported)
from hwprune.ir.layers import VARIADIC, Dense, Layer, Shape, Softmax, WeightedLayer
from hwprune.ir.fixed import Fixed

LAYOUTS = ("channels_last", "channels_first")

#: What banners and reports say about the outputs of a model whose Softmax is dropped.
LOGITS_NOTE = "outputs are logits (the model's final Softmax is not computed)"


def logits_note(graph: "Graph") -> str:
    """LOGITS_NOTE naming the function the model ends in (Softmax or LogSoftmax)."""
    return LOGITS_NOTE.replace("Softmax", graph.layers[-1].function) if outputs_are_logits(graph) else LOGITS_NOTE


def outputs_are_logits(graph: "Graph") -> bool:
    """Whether the trained network ended in a Softmax that engines leave out."""
    return any(graph.layer(name).kind == "softmax" for name in graph.outputs)


#: The name a chain's single graph input gets (``Graph.chain``).
INPUT = "input"


@dataclass(frozen=True)
class GraphInput:
    """A tensor the caller provides: its name (what layers list in ``inputs``), its
    channels-last shape without a batch axis and, once quantized, its fixed-point type."""

    name: str
    shape: Shape
    t: Optional[Fixed] = None


def _cycle(pending: dict[str, Layer]) -> str:
    """A cycle among layers none of which could be placed, as ``a -> b -> a``."""
    path: list[str] = []
    name = next(iter(pending))
    while name not in path:
        path.append(name)
        name = next(n for n in pending[name].inputs if n in pending)
    return " -> ".join(path[path.index(name):] + [name])


def _topological(model: str, inputs: tuple[GraphInput, ...], layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """``layers`` in an order where every layer comes after the tensors it reads (the given
    order whenever it already is one); a dangling input or a cycle is a ModelError."""
    available = {i.name for i in inputs}
    names = {layer.name for layer in layers}
    for layer in layers:
        for source in layer.inputs:
            if source not in names and source not in available:
                raise ModelError(f"layer {layer.name!r}: input {source!r} is neither a layer nor an input of model "
                                 f"{model!r} (graph inputs: {sorted(available)})")
    placed: list[Layer] = []
    pending = list(layers)
    while pending:
        # the first layer in the given order whose inputs exist: a topological order is kept as it is
        index = next((i for i, layer in enumerate(pending) if all(s in available for s in layer.inputs)), None)
        if index is None:
            raise ModelError(f"model {model!r}: layers form a cycle: {_cycle({l.name: l for l in pending})}")
        layer = pending.pop(index)
        placed.append(layer)
        available.add(layer.name)
    return tuple(placed)


@dataclass(frozen=True, eq=False)
class Graph:
    """A network as layers in topological order, each naming the tensors it reads
    (``Layer.inputs``: earlier layers' names or graph inputs' names), as hls4ml's
    ``ModelGraph``. ``outputs`` names the tensors the model returns (default: the last
    layer). A graph input's ``t`` is ``None`` until the graph is quantized.

    Shapes are channels-last, as every layer, the integer reference and the C code see
    them. ``input_layout`` records the source model's layout: ``"channels_first"`` for a
    torch conv model, whose float inputs are ``(N, C, H, W)`` or ``(N, C, L)``;
    ``from_source`` turns such a batch into the IR layout. Integer inputs (``x_int``) are
    always in the IR layout. ``Graph.chain`` builds the common case: one input, each layer
    reading the previous one.
    """

    name: str
    inputs: tuple[GraphInput, ...]
    layers: tuple[Layer, ...]
    outputs: tuple[str, ...] = ()
    input_layout: str = "channels_last"

    @classmethod
    def chain(cls, name: str, input_shape: Shape, layers, input_t: Optional[Fixed] = None,
              input_layout: str = "channels_last") -> "Graph":
        """One input named ``input``; every layer that names no inputs reads the tensor
        before it (the previous layer's output, or the input for the first)."""
        previous = INPUT
        linked = []
        for layer in layers:
            if not layer.inputs:
                layer = layer.with_(inputs=(previous,))
            linked.append(layer)
            previous = layer.name
        return cls(name, (GraphInput(INPUT, input_shape, input_t),), tuple(linked), input_layout=input_layout)

    def __post_init__(self) -> None:
        if not is_c_identifier(self.name):
            raise ModelError(f"model name {self.name!r} must be a C identifier (letters, digits, _)")
        if not all(isinstance(i, GraphInput) for i in self.inputs):
            raise ModelError(f"model {self.name!r}: Graph takes its inputs as GraphInput(name, shape, t); a chain of "
                             "layers after one input of a given shape is Graph.chain(name, shape, layers)")
        inputs = tuple(GraphInput(str(i.name), tuple(int(d) for d in i.shape), i.t) for i in self.inputs)
        if not inputs:
            raise ModelError(f"model {self.name!r} has no inputs")
        if self.input_layout not in LAYOUTS:
            raise ModelError(f"model {self.name!r}: input_layout must be one of {LAYOUTS}, got {self.input_layout!r}")
        if self.input_layout == "channels_first" and any(len(i.shape) < 2 for i in inputs):
            raise ModelError(f"model {self.name!r}: a channels_first input needs a channel axis, "
                             f"got {[i.shape for i in inputs]}")
        if not self.layers:
            raise ModelError(f"model {self.name!r} has no layers")
        seen: set[str] = set()
        layers = []
        for layer in self.layers:
            if not is_c_identifier(layer.name):
                raise ModelError(f"layer name {layer.name!r} must be a C identifier")
            if layer.name in seen:
                raise ModelError(f"two layers are named {layer.name!r}; layer names must be unique")
            seen.add(layer.name)
            if not isinstance(layer.inputs, tuple) or not all(isinstance(n, str) for n in layer.inputs):
                layer = layer.with_(inputs=tuple(str(n) for n in layer.inputs))
            layers.append(layer)
        for i in inputs:
            if not is_c_identifier(i.name) or i.name in seen:
                raise ModelError(f"model {self.name!r}: graph input name {i.name!r} must be a C identifier "
                                 "distinct from every other input and layer name")
            seen.add(i.name)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "layers", _topological(self.name, inputs, tuple(layers)))
        outputs = tuple(self.outputs) or (self.layers[-1].name,)
        for name in outputs:
            if name not in seen:
                raise ModelError(f"model {self.name!r}: output {name!r} is neither a layer nor an input")
        if len(set(outputs)) != len(outputs):
            raise ModelError(f"model {self.name!r}: an output is listed twice in {outputs}")
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "_by_name", {layer.name: layer for layer in self.layers})
        consumers: dict[str, list[Layer]] = {name: [] for name in seen}
        for layer in self.layers:
            for source in dict.fromkeys(layer.inputs):
                consumers[source].append(layer)
        for layer in self.layers:
            if isinstance(layer, Softmax) and (consumers[layer.name] or layer.name not in outputs):
                raise ModelError(f"layer {layer.name!r}: Softmax is only supported as a model output")
        object.__setattr__(self, "_consumers", {k: tuple(v) for k, v in consumers.items()})
        object.__setattr__(self, "_shapes", self._infer_shapes())
        object.__setattr__(self, "_types", None)

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes = {i.name: i.shape for i in self.inputs}
        for layer in self.layers:
            n = len(layer.inputs)
            if (n < 2) if layer.arity == VARIADIC else (n != layer.arity):
                wanted = "two or more" if layer.arity == VARIADIC else str(layer.arity)
                raise ModelError(f"layer {layer.name!r}: {type(layer).__name__} reads {wanted} inputs, "
                                 f"it names {n}: {list(layer.inputs)}")
            try:
                shape = tuple(layer.output_shape(*(shapes[s] for s in layer.inputs)))
            except ShapeError:
                raise
            except Exception as exc:  # a layer's own check with a less specific error
                raise ShapeError(f"layer {layer.name!r}: {exc}") from exc
            shapes[layer.name] = shape
        return shapes

    # -- structure and lookups by name --------------------------------------------------
    def layer(self, name: str) -> Layer:
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ModelError(f"model {self.name!r} has no layer named {name!r}; "
                             f"it has {[l.name for l in self.layers]}") from None

    def producer(self, name: str) -> Optional[Layer]:
        """The layer that writes tensor ``name``; None for a graph input."""
        return self._by_name.get(name)  # type: ignore[attr-defined]

    def consumers(self, name: str) -> tuple[Layer, ...]:
        """The layers that read tensor ``name``, in order."""
        return self._consumers[name]  # type: ignore[attr-defined]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def is_chain(self) -> bool:
        """One input, one output (the last layer), and each layer reads the tensor before it."""
        previous = self.inputs[0].name
        for layer in self.layers:
            if layer.inputs != (previous,):
                return False
            previous = layer.name
        return len(self.inputs) == 1 and self.outputs == (previous,)

    def require_chain(self, what: str) -> "Graph":
        if not self.is_chain:
            raise ModelError(f"model {self.name!r} is a graph with branches or several inputs/outputs; "
                             f"{what} handles chains of layers only")
        return self

    def shape_of(self, name: str) -> Shape:
        """The shape of tensor ``name`` (a layer's output or a graph input)."""
        return self._shapes[name]  # type: ignore[attr-defined]

    def input_shapes(self, layer) -> tuple[Shape, ...]:
        """The shapes of the tensors ``layer`` (a Layer or its name) reads, in operand order."""
        layer = self.layer(layer) if isinstance(layer, str) else layer
        return tuple(self._shapes[s] for s in layer.inputs)  # type: ignore[attr-defined]

    def input_shape_of_layer(self, layer) -> Shape:
        """The shape of a one-input layer's input."""
        (shape,) = self.input_shapes(layer)
        return shape

    @property
    def input(self) -> GraphInput:
        if len(self.inputs) != 1:
            raise ModelError(f"model {self.name!r} has {len(self.inputs)} inputs {list(self.input_names)}; "
                             "this step takes a model with one input")
        return self.inputs[0]

    @property
    def input_shape(self) -> Shape:
        return self.input.shape

    @property
    def input_t(self) -> Optional[Fixed]:
        return self.input.t

    @property
    def output(self) -> str:
        if len(self.outputs) != 1:
            raise ModelError(f"model {self.name!r} has {len(self.outputs)} outputs {list(self.outputs)}; "
                             "this step takes a model with one output")
        return self.outputs[0]

    @property
    def output_shape(self) -> Shape:
        return self.shape_of(self.output)
    def check_batch(self, x, what: str = "inputs", single_ok: bool = False) -> np.ndarray:
        """``x`` as an array of shape ``(N, *input_shape)``; a ShapeError naming ``what``
        when it does not fit, a DataError when it holds no vectors. With ``single_ok`` one
        vector without the batch axis is accepted too."""
        x = np.asarray(x)
        if single_ok and x.shape == self.input_shape:
            x = x[None]
        if x.ndim < 1 or x.shape[1:] != self.input_shape:
            expected = "(N, " + ", ".join(map(str, self.input_shape)) + ")"
            raise ShapeError(f"{what} have shape {x.shape}; model {self.name!r} expects {expected}")
        if len(x) == 0:
            raise DataError(f"{what} hold no vectors")
        return x

    @property
    def source_input_shape(self) -> Shape:
        """One input's shape in the source model's layout (what ``from_source`` takes)."""
        if self.input_layout == "channels_first":
            return (self.input_shape[-1], *self.input_shape[:-1])
        return self.input_shape

    def from_source(self, x, what: str = "inputs", single_ok: bool = False) -> np.ndarray:
        """A batch in the source model's layout, checked, as ``(N, *input_shape)``."""
        x = np.asarray(x)
        if single_ok and x.shape == self.source_input_shape:
            x = x[None]
        if x.ndim < 1 or x.shape[1:] != self.source_input_shape:
            expected = "(N, " + ", ".join(map(str, self.source_input_shape)) + ")"
            layout = " (channels first, as the source model)" if self.input_layout == "channels_first" else ""
            raise ShapeError(f"{what} have shape {x.shape}; model {self.name!r} expects {expected}{layout}")
        if len(x) == 0:
            raise DataError(f"{what} hold no vectors")
        return np.moveaxis(x, 1, -1) if self.input_layout == "channels_first" else x

    def to_source(self, x: np.ndarray) -> np.ndarray:
        """A batch ``(N, *input_shape)`` back in the source model's layout."""
        return np.moveaxis(x, -1, 1) if self.input_layout == "channels_first" else x

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def dense_layers(self) -> list[Dense]:
        return [l for l in self.layers if isinstance(l, Dense)]

    def weighted_layers(self) -> list[WeightedLayer]:
        """Every layer with weights (Dense, Conv1D, Conv2D), in order."""
        return [l for l in self.layers if l.weighted]

    # -- types --------------------------------------------------------------------------
    @property
    def is_quantized(self) -> bool:
        return all(i.t is not None for i in self.inputs) and all(l.is_quantized() for l in self.layers)

    def type_of(self, name: str) -> Fixed:
        """The fixed-point type of tensor ``name``: a computing layer's ``result_t``; a
        layer that computes nothing passes its input's type on."""
        if self._types is None:  # type: ignore[has-type]
            if not self.is_quantized:
                raise ModelError(f"model {self.name!r} is not quantized; run quant.calibrate first")
            types = {i.name: i.t for i in self.inputs}
            for layer in self.layers:
                types[layer.name] = layer.result_t if layer.computes else types[layer.inputs[0]]  # type: ignore
            object.__setattr__(self, "_types", types)
        return self._types[name]  # type: ignore[index]

    def input_types(self, layer) -> tuple[Fixed, ...]:
        """The types of the tensors ``layer`` (a Layer or its name) reads, in operand order."""
        layer = self.layer(layer) if isinstance(layer, str) else layer
        return tuple(self.type_of(s) for s in layer.inputs)

    @property
    def output_t(self) -> Fixed:
        return self.type_of(self.output)

    # -- figures ------------------------------------------------------------------------
    @property
    def total_weights(self) -> int:
        return sum(l.weight.size for l in self.weighted_layers())

    @property
    def nonzero_weights(self) -> int:
        return sum(l.nonzero_weights for l in self.weighted_layers())

    def layer_macs(self, layer, nonzero_only: bool = False) -> int:
        """Multiply-accumulates of ``layer`` (a Layer or its name) per inference (a conv's
        over every output position, taps on padding not counted); ``nonzero_only`` counts
        nonzero weights only."""
        layer = self.layer(layer) if isinstance(layer, str) else layer
        return layer.mac_count(*self.input_shapes(layer), nonzero_only=nonzero_only)

    @property
    def macs(self) -> int:
        return sum(self.layer_macs(l) for l in self.layers)

    @property
    def nonzero_macs(self) -> int:
        return sum(self.layer_macs(l, nonzero_only=True) for l in self.layers)

    def replace(self, **changes) -> "Graph":
        """A copy with fields changed; ``input_t`` and ``input_shape`` change a
        one-input graph's input."""
        if "input_t" in changes or "input_shape" in changes:
            current = self.input
            spec = GraphInput(current.name, changes.pop("input_shape", current.shape), changes.pop("input_t", current.t))
            changes["inputs"] = (spec,)
        return replace(self, **changes)

    def with_layers(self, layers, **changes) -> "Graph":
        return self.replace(layers=tuple(layers), **changes)

    def summary(self) -> str:
        lines = [f"model {self.name}: " + ", ".join(
            f"input {i.name} {i.shape}" + (f" {i.t}" if i.t else "") for i in self.inputs)]
        chain = self.is_chain
        for layer in self.layers:
            extra = ""
            if layer.weighted:
                extra = f" {layer.nonzero_weights}/{layer.weight.size} nonzero"
            reads = "" if chain else f" <- {', '.join(layer.inputs)}"
            lines.append(f"  {layer.name:<16} {layer.kind:<8} -> {self.shape_of(layer.name)}{extra}{reads}")
        if not chain:
            lines.append(f"  outputs: {', '.join(self.outputs)}")
        return "\n".join(lines)
