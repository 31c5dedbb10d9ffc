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

- **Quantize**: element ``i`` cast to its own type ``fixed<widths[i], int_bits[i]>``
  (``ufixed`` where ``signed[i]`` is 0; ``int_bits`` counts the sign bit, as ap_fixed's)
  with the layer's rounding and overflow, a width of 0 giving 0; the result is that value
  on the common grid of ``result_t``, which holds every element's type exactly. The
  parameter arrays have the shape of a suffix of the input's (numpy broadcasting: one
  element type per channel, per position, or one for all). HGQ's ``FixedPointQuantizer``
  (Sun et al.), whose parameters differ per element.
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
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, Rounding


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
class Quantize(_Activation):
    """Each element cast to its own fixed-point type (HGQ's heterogeneous quantizer)."""

    widths: np.ndarray = None  # type: ignore[assignment]
    int_bits: np.ndarray = None  # type: ignore[assignment]
    signed: np.ndarray = None  # type: ignore[assignment]
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "quantize"
    channelwise: ClassVar[bool] = False  # each element its own type

    #: Widest element type: the C casts of ``hwprune_fixed.h`` take up to 32 bits.
    MAX_ELEMENT_WIDTH: ClassVar[int] = 32

    def __post_init__(self) -> None:
        arrays = []
        for label, value in (("widths", self.widths), ("int_bits", self.int_bits), ("signed", self.signed)):
            a = np.asarray(value, dtype=np.float64)
            if a.size < 1 or not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
                raise WeightError(f"layer {self.name!r}: Quantize {label} must be integers")
            a = a.astype(np.int64)
            a.setflags(write=False)
            arrays.append(a)
        widths, int_bits, signed = arrays
        if not widths.shape == int_bits.shape == signed.shape:
            raise ShapeError(f"layer {self.name!r}: Quantize widths, int_bits and signed have shapes {widths.shape}, "
                             f"{int_bits.shape}, {signed.shape}; they must agree")
        if widths.min() < 0 or widths.max() > self.MAX_ELEMENT_WIDTH or not np.isin(signed, (0, 1)).all():
            raise WeightError(f"layer {self.name!r}: Quantize widths must be 0..{self.MAX_ELEMENT_WIDTH} and signed 0 "
                              f"or 1, got widths {widths.min()}..{widths.max()}")
        if np.abs(int_bits).max() > MAX_WIDTH:
            raise WeightError(f"layer {self.name!r}: Quantize int_bits beyond +-{MAX_WIDTH}")
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "int_bits", int_bits)
        object.__setattr__(self, "signed", signed)
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    def element_types(self) -> dict[tuple[int, int, int], Fixed]:
        """``(width, int_bits, signed)`` -> that element type, for every nonzero width present."""
        keys = {(int(w), int(i), int(s)) for w, i, s in zip(self.widths.ravel(), self.int_bits.ravel(),
                                                            self.signed.ravel()) if w > 0}
        return {k: Fixed(k[0], k[1], bool(k[2]), self.rounding, self.overflow) for k in sorted(keys)}

    def common_type(self, extra_frac: int = 0) -> Fixed:
        """The narrowest type holding every element type exactly (``extra_frac`` fraction
        bits more), exact itself: TRN, WRAP. All widths 0: ``ufixed<1,1>`` (only 0 occurs)."""
        types = list(self.element_types().values())
        if not types:
            return Fixed(1, 1, False, Rounding.TRN, Overflow.WRAP)
        signed = any(t.signed for t in types)
        frac = max(t.frac_bits for t in types) + extra_frac
        magnitude_bits = max(t.int_bits - int(t.signed) for t in types)  # integer bits without the sign
        int_bits = magnitude_bits + int(signed)
        width = int_bits + frac
        if not 1 <= width <= MAX_WIDTH:
            raise WeightError(f"layer {self.name!r}: the element types need a common type {width} bits wide")
        return Fixed(width, int_bits, signed, Rounding.TRN, Overflow.WRAP)

    def input_type(self) -> Fixed:
        """A type for float inputs read by this layer such that casting to it first and then
        per element equals casting each element directly: floor and wrap (or clamp) commute
        with the coarser element grids; half-up rounding needs one fraction bit more
        (``floor(floor(x 2^(f+1)) / 2 + 1/2) = floor(x 2^f + 1/2)``). Ties-to-even cannot be
        made exact this way; on inputs already on this type's grid it is."""
        t = self.common_type(0 if self.rounding is Rounding.TRN else 1)
        return t.with_(overflow=self.overflow)

    def output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        suffix = shape[len(shape) - self.widths.ndim:] if self.widths.ndim else ()
        if self.widths.ndim > len(shape) or any(p not in (1, d) for p, d in zip(self.widths.shape, suffix)):
            raise ShapeError(f"layer {self.name!r}: Quantize parameters of shape {self.widths.shape} do not broadcast "
                             f"over input shape {shape}")
        return shape

    def parameters(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(widths, int_bits, signed)`` broadcast to the tensor shape ``shape``."""
        return tuple(np.broadcast_to(a, tuple(shape)) for a in (self.widths, self.int_bits, self.signed))


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


ACTIVATION_CLASSES = (LeakyReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm, Quantize, Sign)
