"""IR layers: frozen, typed dataclasses.

Layout convention: tensors are channels-last and carry no batch axis (a Dense input is
``(features,)``; the Conv layers to come take ``(length, channels)`` and
``(height, width, channels)``, as hls4ml does). Frontends convert to this layout.

Weights are float64 arrays. In a quantized graph every weight lies exactly on the grid of
its layer's ``weight_t`` (``quant.fixed.from_grid`` recovers the integers without loss),
so one representation serves the float and the fixed-point graph.

A new layer kind is a dataclass here with a ``kind`` name, ``output_shape`` and, when it
computes values, a ``result_t``; serialization (``ir.io``) follows the field types, and
the reference and backends dispatch on ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError, WeightError
from hwprune.quant.fixed import Fixed

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Layer:
    name: str

    kind: ClassVar[str] = "layer"
    #: Whether the layer produces new values (and so carries a ``result_t``).
    computes: ClassVar[bool] = False

    def output_shape(self, input_shape: Shape) -> Shape:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def types(self) -> dict[str, Optional[Fixed]]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_t")}

    def is_quantized(self) -> bool:
        return all(t is not None for t in self.types().values())

    def with_(self, **changes) -> "Layer":
        return replace(self, **changes)


@dataclass(frozen=True, eq=False)
class Dense(Layer):
    """``y = x @ weight.T + bias``; ``weight`` has shape ``(out_features, in_features)``.

    Fixed-point semantics (hls4ml's): ``acc = accum(bias)``, then for each input in order
    ``acc = accum(acc + accum(x_i * w_ji))``, then ``y_j = result(acc)``.
    """

    weight: np.ndarray = None  # type: ignore[assignment]
    bias: np.ndarray = None  # type: ignore[assignment]
    weight_t: Optional[Fixed] = None
    bias_t: Optional[Fixed] = None
    accum_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "dense"
    computes: ClassVar[bool] = True

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim != 2:
            raise ShapeError(f"layer {self.name!r}: Dense weight must be 2-D (out, in), got shape {w.shape}")
        b = np.zeros(w.shape[0]) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
        if b.shape != (w.shape[0],):
            raise ShapeError(f"layer {self.name!r}: bias shape {b.shape} does not match {w.shape[0]} outputs")
        for label, arr in (("weight", w), ("bias", b)):
            if not np.all(np.isfinite(arr)):
                idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                raise WeightError(f"layer {self.name!r}: {label} has a non-finite value {arr[idx]} at index {idx}")
        w.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) != (self.in_features,):
            raise ShapeError(
                f"layer {self.name!r}: Dense expects input shape ({self.in_features},), got {tuple(input_shape)}"
                + ("; add a Flatten before it" if len(input_shape) > 1 else "")
            )
        return (self.out_features,)

    @property
    def macs(self) -> int:
        return int(self.weight.size)

    @property
    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.weight))


@dataclass(frozen=True, eq=False)
class ReLU(Layer):
    """``y = result(max(x, 0))``; hls4ml casts again to the activation's own type."""

    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "relu"
    computes: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class Flatten(Layer):
    """Reshape to one axis (row-major, channels-last); values and type pass through."""

    kind: ClassVar[str] = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)


@dataclass(frozen=True, eq=False)
class Softmax(Layer):
    """A marker that the trained network ended in softmax. Exported graphs end in logits
    (softmax does not change the argmax), so engines pass values through unchanged."""

    kind: ClassVar[str] = "softmax"

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Dense, ReLU, Flatten, Softmax)}
