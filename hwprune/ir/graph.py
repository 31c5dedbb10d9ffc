"""A model as a chain of IR layers, with its shapes checked when it is built."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterator, Optional

import numpy as np

from hwprune.errors import DataError, ModelError, ShapeError
from hwprune.ir.layers import Dense, Layer, Shape, Softmax, WeightedLayer
from hwprune.quant.fixed import Fixed

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_c_identifier(name: str) -> bool:
    return bool(_C_IDENTIFIER.fullmatch(name))


LAYOUTS = ("channels_last", "channels_first")

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


def logits_note(graph: "Graph") -> str:
    """LOGITS_NOTE naming the function the model ends in (Softmax or LogSoftmax)."""
    return LOGITS_NOTE.replace("Softmax", graph.layers[-1].function) if outputs_are_logits(graph) else LOGITS_NOTE


def outputs_are_logits(graph: "Graph") -> bool:
    """Whether the trained network ended in a Softmax that engines leave out."""
    return bool(graph.layers) and graph.layers[-1].kind == "softmax"


@dataclass(frozen=True, eq=False)
class Graph:
    """A sequential network. ``input_t`` is ``None`` until the graph is quantized.

    ``input_shape`` is channels-last, as every layer, the integer reference and the C code
    see it. ``input_layout`` records the source model's layout: ``"channels_first"`` for a
    torch conv model, whose float inputs are ``(N, C, H, W)`` or ``(N, C, L)``;
    ``from_source`` turns such a batch into the IR layout. Integer inputs (``x_int``) are
    always in the IR layout.
    """

    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    input_t: Optional[Fixed] = None
    input_layout: str = "channels_last"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.input_layout not in LAYOUTS:
            raise ModelError(f"model {self.name!r}: input_layout must be one of {LAYOUTS}, got {self.input_layout!r}")
        if self.input_layout == "channels_first" and len(self.input_shape) < 2:
            raise ModelError(f"model {self.name!r}: a channels_first input needs a channel axis, got {self.input_shape}")
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

    def weighted_layers(self) -> list[WeightedLayer]:
        """Every layer with weights (Dense, Conv1D, Conv2D), in order."""
        return [l for l in self.layers if isinstance(l, WeightedLayer)]

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
        return sum(l.weight.size for l in self.weighted_layers())

    @property
    def nonzero_weights(self) -> int:
        return sum(l.nonzero_weights for l in self.weighted_layers())

    def layer_macs(self, index: int, nonzero_only: bool = False) -> int:
        """Multiply-accumulates of layer ``index`` per inference (a conv's over every output
        position, taps on padding not counted); ``nonzero_only`` counts nonzero weights only."""
        return self.layers[index].mac_count(self.input_shape_of(index), nonzero_only)

    @property
    def macs(self) -> int:
        return sum(self.layer_macs(i) for i in range(len(self.layers)))

    @property
    def nonzero_macs(self) -> int:
        return sum(self.layer_macs(i, nonzero_only=True) for i in range(len(self.layers)))

    def with_layers(self, layers, **changes) -> "Graph":
        return replace(self, layers=tuple(layers), **changes)

    def replace(self, **changes) -> "Graph":
        return replace(self, **changes)

    def summary(self) -> str:
        lines = [f"model {self.name}: input {self.input_shape}" + (f" {self.input_t}" if self.input_t else "")]
        for layer, shape in zip(self.layers, self.shapes):
            extra = ""
            if isinstance(layer, WeightedLayer):
                extra = f" {layer.nonzero_weights}/{layer.weight.size} nonzero"
            lines.append(f"  {layer.name:<16} {layer.kind:<8} -> {shape}{extra}")
        return "\n".join(lines)
