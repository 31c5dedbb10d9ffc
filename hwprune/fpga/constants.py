"""Constant multiplications as hardware sees them: signed digits, shifts and DSP tiles.

A product ``x * w`` with a constant integer ``w`` costs nothing when ``w`` is zero or a
power of two (wiring), one adder when ``w`` has two nonzero digits in canonical signed
digit form (``7 = 8 - 1``), and so on: ``d`` nonzero CSD digits need ``d - 1`` adders.
"""

from __future__ import annotations

import math


def csd_digits(value: int) -> int:
    """Nonzero digits of ``|value|`` in canonical signed-digit form (the fewest +-2**k terms)."""
    n = abs(int(value))
    digits = 0
    while n:
        if n & 1:
            digits += 1
            # ...11 becomes ...(+1)0(-1): a run of ones costs two digits, not its length.
            n = n + 1 if (n & 3) == 3 else n - 1
        n >>= 1
    return digits


def significant_bits(value: int) -> int:
    """Bits of ``|value|`` once its trailing zeros (a free shift) are removed."""
    n = abs(int(value))
    if n == 0:
        return 0
    while n % 2 == 0:
        n //= 2
    return n.bit_length()


def dsp_tiles(a_bits: int, b_bits: int, dsp_a: int, dsp_b: int) -> int:
    """DSP slices for an ``a_bits x b_bits`` signed product on a ``dsp_a x dsp_b`` multiplier
    (DSP48E2 27x18, DSP48E1 25x18), the operands oriented the cheaper way."""
    straight = math.ceil(a_bits / dsp_a) * math.ceil(b_bits / dsp_b)
    swapped = math.ceil(b_bits / dsp_a) * math.ceil(a_bits / dsp_b)
    return max(1, min(straight, swapped))
