"""TFLite's int8 scheme: the second numeric dialect, beside ``ir.fixed``'s ap_fixed.

A value of type ``Int8Affine(scale, zero_point)`` is stored as an int8 ``q`` and means
``scale * (q - zero_point)`` (activations, one scale per tensor). Weights are plain int8
integers (``IntType(8)``) with one float scale per output channel and zero point 0,
biases ``IntType(32)`` at scale ``s_in * s_w``, accumulators ``IntType(32)``.

Requantization follows TFLite Micro's reference kernels exactly (``tensorflow/lite/
kernels/internal/common.h`` and ``quantization_util.cc`` of tflite-micro): a real
multiplier becomes a Q31 significand and a power-of-two exponent (``QuantizeMultiplier``,
``std::frexp`` then ``std::round``), and an int32 accumulator is scaled by a saturating
rounding doubling high multiply followed by a rounding right shift: two roundings, which
is not what LiteRT's single-rounding optimized kernels do (tflite-micro issue #3130).
Every function here is int64 numpy arithmetic on values that the C code holds in int32.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from hwprune.errors import FixedPointError, ModelError
from hwprune.ir.fixed import Fixed

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True)
class IntType:
    """Plain two's complement integers of ``width`` bits (no scale): int8 weights, int32
    biases and accumulators of the int8 dialect."""

    width: int
    signed: bool = True
    frac_bits: int = 0  # the integers are the values' own units (the scale lives elsewhere)

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def c_type(self) -> str:
        return f"int{self.width}_t"

    def __str__(self) -> str:
        return f"int{self.width}"


@dataclass(frozen=True)
class Int8Affine:
    """A per-tensor affine int8 type: ``real = scale * (q - zero_point)``. ``scale`` is the
    float32 value the model file holds (kept as the float64 of that float32)."""

    scale: float
    zero_point: int

    width = 8
    signed = True
    frac_bits = 0
    min_int = -128
    max_int = 127
    c_type = "int8_t"

    def __post_init__(self) -> None:
        scale = float(np.float32(self.scale))
        if not (math.isfinite(scale) and scale > 0):
            raise FixedPointError(f"an int8 affine type needs a positive finite scale, got {self.scale!r}")
        zp = int(self.zero_point)
        if not -128 <= zp <= 127:
            raise FixedPointError(f"an int8 zero point must be in -128..127, got {self.zero_point!r}")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)

    def __str__(self) -> str:
        # repr of a float64 reads back bit for bit
        return f"int8_affine<{self.scale!r},{self.zero_point}>"

    def to_real(self, q) -> np.ndarray:
        return self.scale * (np.asarray(q, dtype=np.float64) - self.zero_point)

    def quantize(self, x) -> np.ndarray:
        """Float values to this type's integers, as TFLite's QUANTIZE does (round half away
        from zero of ``x / scale``, plus the zero point, saturated)."""
        v = (np.asarray(x, dtype=np.float32) / np.float32(self.scale)).astype(np.float64)
        q = np.sign(v) * np.floor(np.abs(v) + 0.5)  # std::round: half away from zero
        return np.clip(q.astype(np.int64) + self.zero_point, -128, 127)


DialectType = (Fixed, IntType, Int8Affine)


def parse_type(text: str):
    """A value type from its string: ``fixed<...>``, ``int8``/``int32`` or ``int8_affine<s,zp>``."""
    m = re.fullmatch(r"\s*int8_affine<\s*([^,>]+)\s*,\s*(-?\d+)\s*>\s*", text)
    if m:
        try:
            return Int8Affine(float(m.group(1)), int(m.group(2)))
        except ValueError:
            raise FixedPointError(f"cannot read int8 affine type {text!r}") from None
    m = re.fullmatch(r"\s*int(8|16|32)\s*", text)
    if m:
        return IntType(int(m.group(1)))
    return Fixed.parse(text)


def is_int8_type(t) -> bool:
    return isinstance(t, (IntType, Int8Affine))


# -- multipliers, as TFLM's Prepare computes them ------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier`` (double rounding build): ``real ~ m * 2**(e - 31)``
    with ``m`` in [2**30, 2**31); returns ``(m, e)`` (``e`` > 0 shifts left)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed > (1 << 31):
        raise ModelError(f"multiplier {real!r} cannot be represented")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """``QuantizeMultiplierSmallerThanOneExp``: as above, the exponent must be <= 0."""
    if not 0.0 < real < 1.0:
        raise ModelError(f"multiplier {real!r} must lie in (0, 1)")
    m, e = quantize_multiplier(real)
    if e > 0:
        raise ModelError(f"multiplier {real!r} has a positive exponent {e}")
    return m, e


def _round_half_away(v: float) -> int:
    """C's ``std::round``."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def conv_multipliers(input_scale: float, weight_scales, output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(multiplier, shift)`` of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
    (``PopulateConvolutionQuantizationParams``): ``s_in * s_w / s_out`` all in double. TFLM's
    FULLY_CONNECTED computes a per-tensor multiplier this way too; LiteRT's older
    ``GetQuantizedConvolutionMultipler`` multiplies ``s_in * s_w`` in float32 first, which
    moves AD's last multiplier by 29 and 8 of its 640,000 outputs (1,000 inputs) by one."""
    pairs = [quantize_multiplier(float(np.float32(input_scale)) * float(np.float32(s)) / float(np.float32(output_scale)))
             for s in np.asarray(weight_scales, dtype=np.float32)]
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def activation_range(activation: str, out: Int8Affine) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for an int8 output: the fused clamp."""
    def q(f: float) -> int:  # zero_point + round(f / scale), the division in float32
        return out.zero_point + _round_half_away(float(np.float32(f) / np.float32(out.scale)))

    if activation == "none":
        return -128, 127
    if activation == "relu":
        return max(-128, q(0.0)), 127
    if activation == "relu6":
        return max(-128, q(0.0)), min(127, q(6.0))
    if activation == "relu_n1_to_1":
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise ModelError(f"fused activation {activation!r} is not supported (none, relu, relu6, relu_n1_to_1)")


# -- the arithmetic of the reference kernels ----------------------------------------------------

def wrap_int32(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def saturating_rounding_doubling_high_mul(a: np.ndarray, b) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 values held in int64."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b  # |a|, |b| <= 2**31: fits int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    v = ab + nudge
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: round half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLM's reference ``MultiplyByQuantizedMultiplier(int32 x, m, shift)``: ``x`` shifted
    left by ``max(shift, 0)`` (int32, as C computes it), the high multiply, then a rounding
    right shift by ``max(-shift, 0)``. ``multiplier``/``shift`` broadcast over the last axis."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def requantize(acc: np.ndarray, multiplier, shift, output_zero_point: int, act_min: int, act_max: int) -> np.ndarray:
    """The end of every weighted int8 kernel: scale, add the output zero point, clamp."""
    y = multiply_by_quantized_multiplier(acc, multiplier, shift) + output_zero_point
    return np.clip(y, act_min, act_max)


@dataclass(frozen=True)
class AddParams:
    """The integer parameters of an int8 ADD, as TFLM's ``CalculateOpDataAdd`` sets them."""

    input1_offset: int
    input2_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    output_offset: int
    act_min: int
    act_max: int


def add_params(in1: Int8Affine, in2: Int8Affine, out: Int8Affine, activation: str = "none") -> AddParams:
    left_shift = 20  # int8 (int16 uses 15)
    twice_max = 2 * float(max(np.float32(in1.scale), np.float32(in2.scale)))
    m1 = quantize_multiplier_smaller_than_one(in1.scale / twice_max)
    m2 = quantize_multiplier_smaller_than_one(in2.scale / twice_max)
    mo = quantize_multiplier_smaller_than_one(twice_max / ((1 << left_shift) * out.scale))
    lo, hi = activation_range(activation, out)
    return AddParams(-in1.zero_point, -in2.zero_point, left_shift, m1[0], m1[1], m2[0], m2[1], mo[0], mo[1],
                     out.zero_point, lo, hi)


def _smaller_than_one(x: np.ndarray, multiplier: int, left_shift: int) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (double rounding)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -left_shift)


def add_operand(x: np.ndarray, p: AddParams, which: int) -> np.ndarray:
    """One operand of ADD scaled to the common grid: plus its offset, shifted left, times its
    multiplier below one. It depends on the int8 value alone, so a table of 256 holds it."""
    offset, multiplier, shift = ((p.input1_offset, p.input1_multiplier, p.input1_shift) if which == 1 else
                                 (p.input2_offset, p.input2_multiplier, p.input2_shift))
    shifted = wrap_int32((np.asarray(x, dtype=np.int64) + offset) << p.left_shift)
    return _smaller_than_one(shifted, multiplier, shift)


def add_int8(x1: np.ndarray, x2: np.ndarray, p: AddParams) -> np.ndarray:
    """TFLM's reference int8 ADD of two same-shape tensors (``reference_integer_ops::Add``)."""
    total = add_operand(x1, p, 1) + add_operand(x2, p, 2)
    y = _smaller_than_one(total, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(y, p.act_min, p.act_max)
