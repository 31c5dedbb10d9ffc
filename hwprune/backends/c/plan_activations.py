"""What the generated C computes for LeakyReLU/PReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm and Quantize
(``plan.plan_model`` calls it); the arithmetic is ``reference.activations``', in the C
integer it fits.

- LeakyReLU: ``x > 0 ? cast(x) : cast(x * a)``, ``a`` one slope or ``a[i % channels]``.
- HardSigmoid: ``v = x * S + H`` with ``S`` the slope already scaled onto the sum's grid
  (a multiplication, never a shift of a negative value), clamped to ``[0, ONE]``, cast.
- Sigmoid, Tanh: the table is a ``static const`` array of ``table_t`` integers (the
  reference's own), the index ``x * k / 2^f`` (C's division truncates towards zero, as
  hls4ml's conversion to ``int`` does) plus ``size / 2``, clamped; the entry cast.
- Selu: ``x >= 0 ? cast(x * LAMBDA) : cast(table[index])``, the index ``-x * k / 2^f``
  (not negative), clamped.
- Sign: ``cast(x >= 0 ? 1 : -1)`` from the grid where the scale is one unit.
- Quantize: ``width[c] ? cast(x, shift[c], width[c], signed[c]) * 2^up[c] : 0`` with the
  element types' parameters repeating every ``c`` values (their count is the parameter
  array's size, a suffix of the tensor's shape), the product on ``result_t``'s grid exact.
- BatchNorm: ``cast(x * S[c] + B[c])`` with the scales and biases on the sum's grid
  (``reference.activations.batchnorm_grid``), ``c = i % channels``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwprune.backends.c.cast import Cast
from hwprune.errors import ModelError
from hwprune.ir.activations import ACTIVATION_CLASSES
from hwprune.ir.base import Layer
from hwprune.ir.fixed import Fixed
from hwprune.ir.activations import SELU_LAMBDA_T
from hwprune.reference.activations import (batchnorm_grid, hard_sigmoid_grid, index_step, leaky_slopes,
                                           quantize_shifts, selu_lambda, table)

INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1
ACTIVATION_KINDS = frozenset(cls.kind for cls in ACTIVATION_CLASSES)


def _magnitude(t: Fixed) -> int:
    return max(-t.min_int, t.max_int)


def _bits(*bounds: int) -> int:
    if max(bounds) <= INT32_MAX:
        return 32
    if max(bounds) <= INT64_MAX:
        return 64
    raise ModelError(f"a value of {max(bounds)} does not fit a 64-bit C integer")


@dataclass(frozen=True)
class ActivationArithmetic:
    bits: int  # 32 or 64: the C integer every value is formed in
    casts: tuple  # Cast: the result (LeakyReLU: the positive side, then the product)
    # LeakyReLU: the slopes; HardSigmoid: (S, H, ONE); BatchNorm: the scales; Selu: (lambda,)
    constants: tuple[int, ...] = ()
    biases: tuple[int, ...] = ()  # BatchNorm: the biases on the sum's grid
    table: tuple[int, ...] = ()  # Sigmoid, Tanh, Selu: the entries
    table_c: str = ""  # ... their C type
    step: int = 1  # table entries per unit of input
    divisor: int = 1  # 2^f: the input's grid (f > 0), else 1
    multiplier: int = 1  # 2^-f when the input has negative fraction bits
    channels: int = 1  # LeakyReLU, BatchNorm, Quantize: constants repeat every `channels` values
    # Quantize, per element type: fraction bits dropped, width (0: the value is 0), signed, shift onto the result
    shifts: tuple[int, ...] = ()
    widths: tuple[int, ...] = ()
    signed: tuple[int, ...] = ()
    ups: tuple[int, ...] = ()

    @property
    def c_int(self) -> str:
        return f"int{self.bits}_t"


def activation_arithmetic(layer: Layer, in_t: Fixed) -> ActivationArithmetic:
    out_t = layer.result_t
    if layer.kind == "leaky_relu":
        a = leaky_slopes(layer, in_t)
        bits = _bits(_magnitude(in_t) * _magnitude(layer.param_t), _magnitude(out_t))
        casts = (Cast(in_t.frac_bits - out_t.frac_bits, out_t, bits),
                 Cast(in_t.frac_bits + layer.param_t.frac_bits - out_t.frac_bits, out_t, bits))
        return ActivationArithmetic(bits, casts, tuple(int(v) for v in a), channels=int(a.size))
    if layer.kind == "hard_sigmoid":
        s, h, frac = hard_sigmoid_grid(layer, in_t)
        scaled = s << (frac - in_t.frac_bits - layer.slope_t.frac_bits)
        one = 1 << frac
        bits = _bits(_magnitude(in_t) * abs(scaled) + abs(h), one, _magnitude(out_t))
        return ActivationArithmetic(bits, (Cast(frac - out_t.frac_bits, out_t, bits),), (scaled, h, one))
    if layer.kind == "quantize":
        shifts, ups = quantize_shifts(layer, in_t)
        narrow = int(layer.widths.max()) <= 31 and _bits(_magnitude(in_t), _magnitude(out_t)) == 32
        flat = lambda a: tuple(int(v) for v in np.asarray(a).reshape(-1))  # noqa: E731
        return ActivationArithmetic(32 if narrow else 64, (), channels=int(layer.widths.size), shifts=flat(shifts),
                                    widths=flat(layer.widths), signed=flat(layer.signed), ups=flat(ups))
    if layer.kind == "batchnorm":
        scales, biases, frac = batchnorm_grid(layer, in_t)
        bits = _bits(_magnitude(in_t) * int(np.abs(scales).max()) + int(np.abs(biases).max()), _magnitude(out_t))
        return ActivationArithmetic(bits, (Cast(frac - out_t.frac_bits, out_t, bits),),
                                    tuple(int(v) for v in scales), biases=tuple(int(v) for v in biases),
                                    channels=int(scales.size))
    if layer.kind in ("sigmoid", "tanh"):
        k = index_step(layer, in_t)
        f = in_t.frac_bits
        entries = table(layer)
        t = layer.table_t
        bits = _bits(_magnitude(in_t) * k << max(-f, 0), _magnitude(t), _magnitude(out_t))
        return ActivationArithmetic(bits, (Cast(t.frac_bits - out_t.frac_bits, out_t, bits),),
                                    table=tuple(int(v) for v in np.asarray(entries)), table_c=t.c_type, step=k,
                                    divisor=1 << max(f, 0), multiplier=1 << max(-f, 0))
    if layer.kind == "selu":
        k = index_step(layer, in_t)
        f = in_t.frac_bits
        scale, t = selu_lambda(), layer.table_t
        bits = _bits((_magnitude(in_t) + 1) * k << max(-f, 0), _magnitude(in_t) * scale, _magnitude(t),
                     _magnitude(out_t))
        casts = (Cast(t.frac_bits - out_t.frac_bits, out_t, bits),
                 Cast(f + SELU_LAMBDA_T.frac_bits - out_t.frac_bits, out_t, bits))
        return ActivationArithmetic(bits, casts, (scale,), table=tuple(int(v) for v in np.asarray(table(layer))),
                                    table_c=t.c_type, step=k, divisor=1 << max(f, 0), multiplier=1 << max(-f, 0))
    if layer.kind == "sign":
        return ActivationArithmetic(32, (Cast(layer.frac_bits - out_t.frac_bits, out_t, 32),))
    raise ModelError(f"layer {layer.name!r}: the C backend has no kernel for {layer.kind!r} layers")
