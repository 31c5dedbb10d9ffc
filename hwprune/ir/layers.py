"""IR layers: frozen, typed dataclasses.

Layout convention: tensors are channels-last and carry no batch axis (a Dense input is
``(features,)``, a 1-D conv or pooling input ``(length, channels)``, a 2-D one
``(height, width, channels)``, as hls4ml does). Frontends convert to this layout; a
Flatten therefore flattens ``(H, W, C)`` row-major with the channel fastest.

Weighted layers (Dense, Conv1D, Conv2D) share ``weight``, ``bias`` and four types
(``weight_t``, ``bias_t``, ``accum_t``, ``result_t``). ``weight.reshape(out, -1)`` is the
filter matrix of every one of them (a conv filter's ``(kh, kw, cin)`` elements are
contiguous, as in CMSIS-NN), so a storage format written for Dense matrices stores conv
filters unchanged. Frontends fold a BatchNorm into the adjacent weighted layer; one that
cannot fold is a ``BatchNorm`` layer (``ir.activations``). Padding is explicit (frontends resolve "valid"/"same"); dilation is 1.

Weights are float64 arrays. In a quantized graph every weight lies exactly on the grid of
its layer's ``weight_t`` (``ir.fixed.from_grid`` recovers the integers without loss),
so one representation serves the float and the fixed-point graph.

A new layer kind is a dataclass here with a ``kind`` name, ``output_shape`` and, when it
computes values, a ``result_t``; serialization (``ir.io``) follows the field types, and
the reference and backends dispatch on ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError
from hwprune.ir.activations import BatchNorm, HardSigmoid, LeakyReLU, Quantize, Selu, Sigmoid, Sign, Tanh
from hwprune.ir.base import VARIADIC, Layer, Shape, WeightedLayer
from hwprune.ir.merge import Add, Concatenate, Multiply
from hwprune.ir.spatial import (
    AvgPool1D, AvgPool2D, Conv1D, Conv2D, GlobalAvgPool1D, GlobalAvgPool2D, MaxPool1D, MaxPool2D,
)
from hwprune.ir.fixed import Fixed


@dataclass(frozen=True, eq=False)
class Dense(WeightedLayer):
    """``y = x @ weight.T + bias``; ``weight`` has shape ``(out_features, in_features)``.

    Fixed-point semantics (hls4ml's): ``acc = accum(bias)``, then for each input in order
    ``acc = accum(acc + accum(x_i * w_ji))``, then ``y_j = result(acc)``.
    """

    kind: ClassVar[str] = "dense"
    weight_axes: ClassVar[tuple[str, ...]] = ("out", "in")

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

    def mac_count(self, *input_shapes: Shape, nonzero_only: bool = False) -> int:
        return self.nonzero_weights if nonzero_only else self.macs


@dataclass(frozen=True, eq=False)
class ReLU(Layer):
    """``y = result(max(x, 0))``; hls4ml casts again to the activation's own type."""

    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "relu"
    computes: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class Clip(Layer):
    """``y = result(min(max(x, min_value), max_value))`` (ReLU6 is ``Clip(0, 6)``, torch's
    hardtanh ``Clip(-1, 1)``). The bounds are real numbers; on the input's grid the clamp
    compares the integer ``x`` with ``ceil(min * 2^f)`` and ``floor(max * 2^f)``, exactly."""

    min_value: float = 0.0
    max_value: float = 6.0
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "clip"
    computes: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True

    def __post_init__(self) -> None:
        lo, hi = float(self.min_value), float(self.max_value)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ShapeError(f"layer {self.name!r}: Clip bounds must be finite with min <= max, got {lo}, {hi}")
        object.__setattr__(self, "min_value", lo)
        object.__setattr__(self, "max_value", hi)

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class UpSample(Layer):
    """Nearest-neighbour upsampling by an integer factor per spatial axis: output position
    ``i`` of an axis is input position ``i // size`` (ONNX ``Resize`` in mode ``nearest``
    with ``asymmetric`` coordinates and ``floor``, Keras's ``UpSampling``); ``y = result(x)``."""

    size: tuple[int, ...] = (2, 2)
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "upsample"
    computes: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True

    def __post_init__(self) -> None:
        size = tuple(int(k) for k in self.size)
        if not size or min(size) < 1:
            raise ShapeError(f"layer {self.name!r}: UpSample factors must be positive integers, got {self.size}")
        object.__setattr__(self, "size", size)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != len(self.size) + 1:
            axes = "L" if len(self.size) == 1 else "H, W"
            raise ShapeError(f"layer {self.name!r}: a {len(self.size)}-D UpSample reads ({axes}, C), got shape "
                             f"{tuple(input_shape)}")
        return (*(d * k for d, k in zip(input_shape, self.size)), input_shape[-1])

    def repeat(self, x: np.ndarray) -> np.ndarray:
        """``x`` (batch first) upsampled."""
        for axis, k in enumerate(self.size):
            x = np.repeat(x, k, axis=axis + 1)
        return x


@dataclass(frozen=True, eq=False)
class Flatten(Layer):
    """Reshape to one axis (row-major, channels-last); values and type pass through."""

    kind: ClassVar[str] = "flatten"
    passthrough: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)


@dataclass(frozen=True, eq=False)
class Softmax(Layer):
    """A marker that the trained network ended in softmax (``log``: in log-softmax). Exported
    graphs end in logits (neither changes the argmax), so engines pass values through
    unchanged."""

    log: bool = False

    kind: ClassVar[str] = "softmax"
    passthrough: ClassVar[bool] = True

    @property
    def function(self) -> str:
        return "LogSoftmax" if self.log else "Softmax"

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class Reshape(Layer):
    """The same values, row-major in the IR's channels-last layout, as ``target_shape``."""

    target_shape: tuple[int, ...] = ()

    kind: ClassVar[str] = "reshape"
    passthrough: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_shape", tuple(int(d) for d in self.target_shape))

    def output_shape(self, input_shape: Shape) -> Shape:
        if int(np.prod(input_shape)) != int(np.prod(self.target_shape)) or min(self.target_shape, default=0) < 1:
            raise ShapeError(f"layer {self.name!r}: cannot reshape {tuple(input_shape)} to {self.target_shape}")
        return self.target_shape


@dataclass(frozen=True, eq=False)
class Identity(Layer):
    """Its input unchanged; frontends may emit it, ``ir.passes.remove_identity`` drops it."""

    kind: ClassVar[str] = "identity"
    passthrough: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


#: THE registry of layer kinds: ``kind`` -> class. Every property a backend or pass asks
#: about (``weighted``, ``spatial``, ``elementwise``, ``passthrough``, ``arity``,
#: ``computes``) is a class attribute, so no module keeps a list of kind names.
LAYER_KINDS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (Dense, ReLU, Clip, UpSample, Flatten, Reshape, Identity, Softmax, Conv1D, Conv2D, MaxPool1D, MaxPool2D,
                AvgPool1D, AvgPool2D, GlobalAvgPool1D, GlobalAvgPool2D, Add, Multiply, Concatenate,
                LeakyReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm, Quantize, Sign)
}


def kinds(**properties) -> frozenset[str]:
    """The kinds whose class has every given property value, e.g. ``kinds(spatial=True)``."""
    return frozenset(k for k, cls in LAYER_KINDS.items()
                     if all(getattr(cls, p) == v for p, v in properties.items()))


__all__ = ["Shape", "Layer", "WeightedLayer", "Dense", "ReLU", "Clip", "UpSample", "Flatten", "Reshape", "Identity", "Softmax",
           "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "Add", "Multiply", "Concatenate", "LeakyReLU", "HardSigmoid", "Sigmoid", "Tanh", "Selu",
           "BatchNorm", "Quantize", "Sign", "LAYER_KINDS", "VARIADIC", "kinds"]
