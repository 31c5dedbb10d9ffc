"""A model as a chain of IR layers, with its shapes checked when it is built."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterator, Optional

import numpy as np

from hwprune.errors import DataError, ModelError, ShapeError
from hwprune.ir.layers import Dense, Layer, Shape, Softmax
from hwprune.quant.fixed import Fixed

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_c_identifier(name: str) -> bool:
    return bool(_C_IDENTIFIER.fullmatch(name))


# C99's keywords; a model name becomes the prefix of C symbols, so none of these can be one.
C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary""".split())


def check_c_name(name: str, what: str = "--name") -> str:
    """``name`` when it can prefix every C symbol and macro of an export, else OptionError."""
    from hwprune.errors import OptionError

    if not isinstance(name, str) or not is_c_identifier(name):
        raise OptionError(f"{what} {name!r} is not a C identifier: use letters, digits and _, not starting with a digit")
    if name in C_KEYWORDS:
        raise OptionError(f"{what} {name!r} is a C keyword; choose another name")
    if name.startswith("_"):
        raise OptionError(f"{what} {name!r}: names starting with _ are reserved for the C implementation")
    return name


#: What banners and reports say about the outputs of a model whose Softmax is dropped.
LOGITS_NOTE = "outputs are logits (the model's final Softmax is not computed)"


def outputs_are_logits(graph: "Graph") -> bool:
    """Whether the trained network ended in a Softmax that engines leave out."""
    return bool(graph.layers) and graph.layers[-1].kind == "softmax"


@dataclass(frozen=True, eq=False)
class Graph:
    """A sequential network. ``input_t`` is ``None`` until the graph is quantized."""

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    input_t: Optional[Fixed] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not is_c_identifier(self.name):
            raise ModelError(f"model name {self.name!r} must be a C identifier (letters, digits, _)")
        if not self.layers:
            raise ModelError(f"model {self.name!r} has no layers")
        seen: set[str] = set()
        for i, layer in enumerate(self.layers):
            if not is_c_identifier(layer.name):
                raise ModelError(f"layer {i} name {layer.name!r} must be a C identifier")
            if layer.name in seen:
                raise ModelError(f"two layers are named {layer.name!r}; layer names must be unique")
            seen.add(layer.name)
            if isinstance(layer, Softmax) and i != len(self.layers) - 1:
                raise ModelError(f"layer {layer.name!r}: Softmax is only supported as the last layer")
        object.__setattr__(self, "_shapes", self._infer_shapes())

    def _infer_shapes(self) -> tuple[Shape, ...]:
        shapes = []
        shape = self.input_shape
        for layer in self.layers:
            try:
                shape = tuple(layer.output_shape(shape))
            except ShapeError:
                raise
            except Exception as exc:  # a layer's own check with a less specific error
                raise ShapeError(f"layer {layer.name!r}: {exc}") from exc
            shapes.append(shape)
        return tuple(shapes)

    # -- shapes and lookups -------------------------------------------------------------
    @property
    def shapes(self) -> tuple[Shape, ...]:
        """Output shape of each layer, in order."""
        return self._shapes  # type: ignore[attr-defined]

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1]

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

    def input_shape_of(self, index: int) -> Shape:
        return self.input_shape if index == 0 else self.shapes[index - 1]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ModelError(f"model {self.name!r} has no layer named {name!r}; it has {[l.name for l in self.layers]}")

    def dense_layers(self) -> list[Dense]:
        return [l for l in self.layers if isinstance(l, Dense)]

    # -- types --------------------------------------------------------------------------
    @property
    def is_quantized(self) -> bool:
        return self.input_t is not None and all(l.is_quantized() for l in self.layers)

    def value_types(self) -> list[Fixed]:
        """Type of each layer's output (layers that compute nothing pass their input's on)."""
        if not self.is_quantized:
            raise ModelError(f"model {self.name!r} is not quantized; run quant.calibrate first")
        current = self.input_t
        out = []
        for layer in self.layers:
            if layer.computes:
                current = layer.result_t  # type: ignore[attr-defined]
            out.append(current)
        return out

    @property
    def output_t(self) -> Fixed:
        return self.value_types()[-1]

    # -- figures ------------------------------------------------------------------------
    @property
    def total_weights(self) -> int:
        return sum(l.weight.size for l in self.dense_layers())

    @property
    def nonzero_weights(self) -> int:
        return sum(l.nonzero_weights for l in self.dense_layers())

    @property
    def macs(self) -> int:
        return sum(l.macs for l in self.dense_layers())

    def with_layers(self, layers, **changes) -> "Graph":
        return replace(self, layers=tuple(layers), **changes)

    def replace(self, **changes) -> "Graph":
        return replace(self, **changes)

    def summary(self) -> str:
        lines = [f"model {self.name}: input {self.input_shape}" + (f" {self.input_t}" if self.input_t else "")]
        for layer, shape in zip(self.layers, self.shapes):
            extra = ""
            if isinstance(layer, Dense):
                extra = f" {layer.nonzero_weights}/{layer.weight.size} nonzero"
            lines.append(f"  {layer.name:<16} {layer.kind:<8} -> {shape}{extra}")
        return "\n".join(lines)
