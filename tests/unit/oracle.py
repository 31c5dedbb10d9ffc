"""An independent oracle of the fixed-point semantics, on exact rationals.

It shares no code with hwprune.ir.fixed: values are ``fractions.Fraction`` and every
cast is written from the ap_fixed definition (scale, round, then overflow).
"""

from fractions import Fraction
from math import floor


def cast_value(v: Fraction, t) -> int:
    """The integer of type ``t`` that ap_fixed assigns to the exact value ``v``."""
    scaled = v * Fraction(2) ** t.frac_bits
    if t.rounding.value == "RND":
        scaled += Fraction(1, 2)
    # RND_CONV: to the nearest, a tie to the even integer (Python's round of a Fraction)
    q = round(scaled) if t.rounding.value == "RND_CONV" else floor(scaled)
    if t.overflow.value == "SAT":
        return max(t.min_int, min(t.max_int, q))
    q %= 1 << t.width
    if t.signed and q >= 1 << (t.width - 1):
        q -= 1 << t.width
    return q


def value(q: int, t) -> Fraction:
    return Fraction(int(q)) / Fraction(2) ** t.frac_bits


def dense(x_ints, in_t, layer):
    """hls4ml's Dense on one input vector: acc = accum(bias); acc = accum(acc + accum(x*w))."""
    from hwprune.ir.fixed import from_grid

    w = from_grid(layer.weight, layer.weight_t)
    b = from_grid(layer.bias, layer.bias_t)
    out = []
    for j in range(w.shape[0]):
        acc = cast_value(value(b[j], layer.bias_t), layer.accum_t)
        for i, x in enumerate(x_ints):
            product = cast_value(value(x, in_t) * value(w[j, i], layer.weight_t), layer.accum_t)
            acc = cast_value(value(acc, layer.accum_t) + value(product, layer.accum_t), layer.accum_t)
        out.append(cast_value(value(acc, layer.accum_t), layer.result_t))
    return out
