"""Element-wise activations with hls4ml 1.3.0's fixed-point semantics (``nnet_activation.h``):
LeakyReLU (one slope, or one per channel: PReLU), HardSigmoid, Sigmoid, Tanh and Selu; and the
per-channel affine map of a BatchNorm that cannot fold into a neighbour (``nnet_batchnorm.h``).

- **LeakyReLU**: ``y = result(x)`` when ``x > 0``, else ``y = result(alpha * x)`` with the
  slope a constant of ``param_t`` and the product exact (``nnet::leaky_relu`` /
  ``nnet::prelu``). ``alpha`` holds one slope, or one per channel (the last axis).
- **HardSigmoid**: ``v = slope * x + shift`` exact, with ``slope`` a constant of
  ``slope_t`` and ``shift`` one of ``shift_t`` (hls4ml's defaults: ``ufixed<16,0>`` and
  ``ufixed<2,0>``); ``v`` clamped to ``[0, 1]``, then ``y = result(v)``
  (``nnet::hard_sigmoid``).
- **Sigmoid / Tanh**: a table of ``table_size`` entries of ``table_t`` over
  ``[-range, range)`` (8 for sigmoid, 4 for tanh). Entry ``i`` is the function at
  ``2 * range * (i - size/2) / size``, computed in float32 as hls4ml's table initialiser
  does (``reference.activations.table``). The index of ``x`` is
  ``trunc(x * size / (2 * range)) + size / 2`` (``trunc`` towards zero), clamped to
  ``[0, size - 1]``; ``y = result(table[index])``.
- **Selu**: ``x >= 0``: ``y = result(lambda * x)``, the product exact with ``lambda`` the
  constant 1.0507009873554805 in ``ufixed<16,1>`` (truncated: 34429 / 2^15); ``x < 0``: a table
  of ``table_size`` entries of ``table_t`` over ``(-8, 0]``, entry ``i`` the function at
  ``-8 * i / size``, index ``trunc(-x * size / 8)`` clamped to ``[0, size - 1]``,
  ``y = result(table[index])`` (``nnet::selu``).

- **Sign**: ``y = result(+scale)`` where ``x >= 0``, else ``y = result(-scale)``, ``scale``
  a power of two (QONNX's ``BipolarQuant`` of a computed tensor; hls4ml's
  ``nnet::binary_tanh`` when ``scale`` is 1: ``datareg >= 0 ? 1 : -1``, cast to ``res_T``).

- **BatchNorm**: ``y = result(x * scale[c] + bias[c])`` per channel ``c`` (the last axis),
  with ``scale`` of ``scale_t``, ``bias`` of ``bias_t`` and the product and the sum exact
  (hls4ml's ``normalize``: ``product(data, scale) + bias`` assigned to ``res_T``). Frontends
  fold a BatchNorm into the Dense or conv beside it where they can; this layer is the one
  they cannot fold: the first layer before a conv, after an activation or an Add.

Slopes, shifts, scales and biases are real numbers on their types' grid in a quantized graph,
as weights are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError, WeightError
from hwprune.ir.base import Layer, Shape
from hwprune.quant.fixed import Fixed


@dataclass(frozen=True, eq=False)
class _Activation(Layer):
    computes: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class LeakyReLU(_Activation):
    """``x`` if ``x > 0`` else ``alpha * x``; ``alpha`` one slope or one per channel (PReLU)."""

    alpha: np.ndarray = None  # type: ignore[assignment]
    param_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "leaky_relu"

    def __post_init__(self) -> None:
        a = np.atleast_1d(np.asarray(0.01 if self.alpha is None else self.alpha, dtype=np.float64))
        if a.ndim != 1 or a.size < 1:
            raise ShapeError(f"layer {self.name!r}: LeakyReLU slopes must be one value or one per channel, "
                             f"got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise WeightError(f"layer {self.name!r}: LeakyReLU slope is not finite ({a[~np.isfinite(a)][0]})")
        a.setflags(write=False)
        object.__setattr__(self, "alpha", a)

    @property
    def per_channel(self) -> bool:
        return self.alpha.size > 1

    def output_shape(self, input_shape: Shape) -> Shape:
        if self.per_channel and (not input_shape or input_shape[-1] != self.alpha.size):
            raise ShapeError(f"layer {self.name!r}: {self.alpha.size} PReLU slopes do not match input shape "
                             f"{tuple(input_shape)} (one per channel, the last axis)")
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class HardSigmoid(_Activation):
    """``clip(slope * x + shift, 0, 1)``; torch's and Keras 3's are ``slope = 1/6``, ONNX's
    default and Keras 2's ``slope = 0.2``; both have ``shift = 0.5``."""

    slope: float = 0.2
    shift: float = 0.5
    slope_t: Optional[Fixed] = None
    shift_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "hard_sigmoid"

    def __post_init__(self) -> None:
        slope, shift = float(self.slope), float(self.shift)
        if not (np.isfinite(slope) and np.isfinite(shift)):
            raise WeightError(f"layer {self.name!r}: HardSigmoid slope and shift must be finite, got {slope}, {shift}")
        object.__setattr__(self, "slope", slope)
        object.__setattr__(self, "shift", shift)


@dataclass(frozen=True, eq=False)
class _TableActivation(_Activation):
    table_size: int = 1024
    table_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    #: The table covers ``[-table_range, table_range)``.
    table_range: ClassVar[int] = 8
    #: hls4ml's activation name and the C function that fills the table.
    function: ClassVar[str] = ""

    @property
    def table_width(self) -> int:
        """The width of the inputs the table covers (its entries per unit: size / width)."""
        return 2 * self.table_range

    def __post_init__(self) -> None:
        size = int(self.table_size)
        # A multiple of the width keeps hls4ml's `x * size / width` an exact division.
        step = self.table_width
        if size < step or size % step or size > 1 << 20:
            raise ShapeError(f"layer {self.name!r}: {type(self).__name__} table_size must be a multiple of {step} "
                             f"from {step} to {1 << 20}, got {self.table_size!r}")
        object.__setattr__(self, "table_size", size)


@dataclass(frozen=True, eq=False)
class Sigmoid(_TableActivation):
    """``1 / (1 + exp(-x))`` by table over ``[-8, 8)``."""

    kind: ClassVar[str] = "sigmoid"
    table_range: ClassVar[int] = 8
    function: ClassVar[str] = "sigmoid"


@dataclass(frozen=True, eq=False)
class Tanh(_TableActivation):
    """``tanh(x)`` by table over ``[-4, 4)``."""

    kind: ClassVar[str] = "tanh"
    table_range: ClassVar[int] = 4
    function: ClassVar[str] = "tanh"


#: hls4ml's SELU scale and its type (an ``ap_ufixed<16, 1>`` constant: truncated, 34429 / 2^15)
SELU_LAMBDA = 1.0507009873554805
SELU_LAMBDA_T = Fixed(16, 1, False)
SELU_ALPHA = 1.6732632423543772


@dataclass(frozen=True, eq=False)
class Selu(_TableActivation):
    """``lambda * x`` for ``x >= 0``, else ``lambda * alpha * (exp(x) - 1)`` by table over
    ``(-8, 0]`` (hls4ml's fixed constants: torch's, Keras's and ONNX's defaults)."""

    kind: ClassVar[str] = "selu"
    table_range: ClassVar[int] = 8
    function: ClassVar[str] = "selu"

    @property
    def table_width(self) -> int:
        return self.table_range  # one side only: (-8, 0]


@dataclass(frozen=True, eq=False)
class BatchNorm(_Activation):
    """``x * scale + bias`` per channel (the last axis): an inference-time BatchNorm."""

    scale: np.ndarray = None  # type: ignore[assignment]
    bias: np.ndarray = None  # type: ignore[assignment]
    scale_t: Optional[Fixed] = None
    bias_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "batchnorm"
    # each channel its own scale and bias: a channel cannot leave without its parameters
    channelwise: ClassVar[bool] = False

    def __post_init__(self) -> None:
        arrays = []
        for label, value in (("scale", self.scale), ("bias", self.bias)):
            a = np.asarray(value, dtype=np.float64).reshape(-1)
            if a.size < 1:
                raise ShapeError(f"layer {self.name!r}: BatchNorm {label} is empty")
            if not np.all(np.isfinite(a)):
                raise WeightError(f"layer {self.name!r}: BatchNorm {label} is not finite ({a[~np.isfinite(a)][0]})")
            a.setflags(write=False)
            arrays.append(a)
        if arrays[0].size != arrays[1].size:
            raise ShapeError(f"layer {self.name!r}: BatchNorm has {arrays[0].size} scales and {arrays[1].size} biases")
        object.__setattr__(self, "scale", arrays[0])
        object.__setattr__(self, "bias", arrays[1])

    @property
    def channels(self) -> int:
        return int(self.scale.size)

    def output_shape(self, input_shape: Shape) -> Shape:
        if not input_shape or input_shape[-1] != self.channels:
            raise ShapeError(f"layer {self.name!r}: a BatchNorm of {self.channels} channels does not match input "
                             f"shape {tuple(input_shape)} (channels are the last axis)")
        return tuple(input_shape)


@dataclass(frozen=True, eq=False)
class Sign(_Activation):
    """``+scale`` where ``x >= 0``, else ``-scale`` (zero is positive, as QONNX's
    ``BipolarQuant``); ``scale`` is a power of two, so ``+-1`` sits on the grid of
    ``-log2(scale)`` fraction bits."""

    scale: float = 1.0
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "sign"

    def __post_init__(self) -> None:
        scale = float(self.scale)
        mantissa, _ = np.frexp(scale)
        if not (np.isfinite(scale) and scale > 0 and mantissa == 0.5):
            raise WeightError(f"layer {self.name!r}: Sign scale must be a positive power of two, got {self.scale!r}")
        object.__setattr__(self, "scale", scale)

    @property
    def frac_bits(self) -> int:
        """The fraction bits of the grid on which ``+-scale`` is ``+-1``."""
        return 1 - int(np.frexp(self.scale)[1])


ACTIVATION_CLASSES = (LeakyReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm, Sign)
