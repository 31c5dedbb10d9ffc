"""QONNX's ``Quant`` and ``BipolarQuant`` nodes (FINN, Brevitas, hls4ml's QONNX flow) as
the fixed-point types they declare.

``Quant(x, scale, zeropt, bitwidth)`` (attributes ``signed``, ``narrow``, ``rounding_mode``)
computes ``round(clip(x / scale + zeropt, lo, hi)) - zeropt) * scale``, with ``lo``/``hi``
the ``bitwidth``-bit integer range (``narrow`` drops the lowest signed value, or the highest
unsigned one). With a zero ``zeropt`` and a power-of-two ``scale = 2^-f`` this is a cast to
``fixed<bitwidth, bitwidth - f>`` (``ufixed`` unsigned), saturating, rounding
``ROUND``/``HALF_EVEN`` half to even (``RND_CONV``) or ``FLOOR`` down (``TRN``); the clamp
before the rounding equals the saturation after it, the bounds being integers.

- On a constant (weights, biases) it is evaluated here, the same formula in numpy, and the
  layer that reads the values gets the narrowest types that hold them
  (``quant.exact.complete_types`` with ``exact_weights``).
- On a computed tensor it is a Clip to ``[lo, hi] * scale`` carrying that type (a cast).

``BipolarQuant(x, scale)`` is ``scale`` times +1 where ``x >= 0``, -1 elsewhere: evaluated
on constants (binary weights); on a computed tensor it is a ``Sign`` activation of type
``fixed<2, 2 + log2(scale)>``, which holds ``+-scale`` exactly.
Refused with one line naming the node: a scale that is not one power of two (per-channel
or arbitrary scales), a nonzero zero point, a bit width below 2, other rounding modes.
"""

from __future__ import annotations

import numpy as np

from hwprune.frontends.onnx_graph import QONNX, folds, op
from hwprune.ir.activations import Sign
from hwprune.ir.layers import Clip
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, Rounding

ROUNDING = {"ROUND": Rounding.RND_CONV, "HALF_EVEN": Rounding.RND_CONV, "FLOOR": Rounding.TRN}


def _flag(attrs: dict, key: str, default: int) -> bool:
    return bool(int(attrs.get(key, default)))


def _rounding_mode(attrs: dict) -> str:
    mode = attrs.get("rounding_mode", "ROUND")
    return (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()


def integer_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


def _round(x: np.ndarray, mode: str) -> np.ndarray:
    if mode not in ROUNDING:
        raise ValueError(f"rounding_mode {mode!r} is not supported ({', '.join(ROUNDING)} are)")
    return np.floor(x) if mode == "FLOOR" else np.round(x)  # np.round: half to even


@folds("Quant", domain=QONNX)
def _fold_quant(values, attrs):
    x, scale, zeropt, bits = (np.asarray(v, dtype=np.float64) for v in values[:4])
    if bits.size != 1 or float(bits.reshape(-1)[0]) != int(bits.reshape(-1)[0]) or int(bits.reshape(-1)[0]) < 2:
        raise ValueError(f"a bit width of {bits.reshape(-1).tolist()} (an integer of at least 2 is supported)")
    lo, hi = integer_range(int(bits.reshape(-1)[0]), _flag(attrs, "signed", 1), _flag(attrs, "narrow", 0))
    q = _round(np.clip(x / scale + zeropt, lo, hi), _rounding_mode(attrs))
    return ((q - zeropt) * scale).astype(np.float32)


@folds("BipolarQuant", domain=QONNX)
def _fold_bipolar(values, attrs):
    x, scale = (np.asarray(v, dtype=np.float64) for v in values[:2])
    return (np.where(x >= 0, 1.0, -1.0) * scale).astype(np.float32)


def _power_of_two(node, ctx, scale: np.ndarray) -> int:
    """``f`` of a scale that is ``2^-f`` everywhere."""
    flat = np.asarray(scale, dtype=np.float64).reshape(-1)
    mantissa, exponent = np.frexp(flat[:1])
    if flat.size == 0 or not np.all(flat == flat[0]) or mantissa[0] != 0.5:
        raise ctx.fail(node, f"scale {flat[:4].tolist()}{' ...' if flat.size > 4 else ''} is not one power of two; "
                             "hwprune reads Quant nodes with a power-of-two scale as fixed-point types")
    return 1 - int(exponent[0])


@op("Quant", domain=QONNX)
def _quant(node, attrs, ctx):
    value = ctx.value(node)
    scale, zeropt, bits = (ctx.const(node, i) for i in (1, 2, 3))
    if scale is None or zeropt is None or bits is None:
        raise ctx.fail(node, "scale, zero point and bit width must be constants")
    if np.any(np.asarray(zeropt) != 0):
        raise ctx.fail(node, f"zero point {np.asarray(zeropt).reshape(-1)[:4].tolist()} is not 0")
    bits = np.asarray(bits, dtype=np.float64).reshape(-1)
    if bits.size != 1 or bits[0] != int(bits[0]) or not 2 <= int(bits[0]) <= MAX_WIDTH:
        raise ctx.fail(node, f"bit width {bits.tolist()} is not an integer from 2 to {MAX_WIDTH}")
    mode = _rounding_mode(attrs)
    if mode not in ROUNDING:
        raise ctx.fail(node, f"rounding_mode {mode!r} is not supported ({', '.join(ROUNDING)} are)")
    frac = _power_of_two(node, ctx, scale)
    width, signed = int(bits[0]), _flag(attrs, "signed", 1)
    lo, hi = integer_range(width, signed, _flag(attrs, "narrow", 0))
    t = Fixed(width, width - frac, signed, ROUNDING[mode], Overflow.SAT)
    clip = Clip("quant", min_value=float(np.ldexp(lo, -frac)), max_value=float(np.ldexp(hi, -frac)), result_t=t)
    return ctx.emit(node, clip, [value], sole=True)


@op("BipolarQuant", domain=QONNX)
def _bipolar(node, attrs, ctx):
    value = ctx.value(node)
    scale = ctx.const(node, 1)
    if scale is None:
        raise ctx.fail(node, "its scale must be a constant")
    frac = _power_of_two(node, ctx, scale)
    sign = Sign("sign", scale=float(np.ldexp(1.0, -frac)), result_t=Fixed(2, 2 - frac, True, Rounding.TRN, Overflow.WRAP))
    return ctx.emit(node, sign, [value], sole=True)
