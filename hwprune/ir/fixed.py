"""The fixed-point numeric model: ap_fixed semantics on int64 numpy arrays.

A value of type ``Fixed(width, int_bits, signed, rounding, overflow)`` is stored as an
integer ``q`` and means ``q / 2**frac_bits`` with ``frac_bits = width - int_bits``. This
module is the only place in Python that knows how a value changes type; its C twin is
``templates/c/hwprune_fixed.h``. Both follow Vivado HLS ``ap_fixed``:

- rounding ``TRN`` drops the extra fraction bits (floor, towards minus infinity);
  ``RND`` adds half an LSB first (round half towards plus infinity, ``AP_RND``);
  ``RND_CONV`` rounds to the nearest value, a tie to the even one (``AP_RND_CONV``: what
  TensorFlow's ``round`` does, and so QKeras's quantizers, and hls4ml's types for them);
- overflow ``WRAP`` keeps the low ``width`` bits (two's complement); ``SAT`` clamps to
  the type's range.

Rounding happens before overflow handling, as in ``ap_fixed``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

import numpy as np

from hwprune.errors import FixedPointError, WeightError

# Widest type the int64 arithmetic of the reference can carry with room for one add.
MAX_WIDTH = 62


class Rounding(str, Enum):
    TRN = "TRN"
    RND = "RND"
    RND_CONV = "RND_CONV"


class Overflow(str, Enum):
    WRAP = "WRAP"
    SAT = "SAT"


@dataclass(frozen=True)
class Fixed:
    """An ap_fixed-like type. ``int_bits`` counts the sign bit when ``signed``."""

    width: int
    int_bits: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or not 1 <= self.width <= MAX_WIDTH:
            raise FixedPointError(f"fixed-point width must be 1..{MAX_WIDTH}, got {self.width!r}")
        if not isinstance(self.int_bits, int):
            raise FixedPointError(f"int_bits must be an integer, got {self.int_bits!r}")
        # Coerce strings so that types read back from JSON compare equal.
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def min_value(self) -> float:
        return math.ldexp(self.min_int, -self.frac_bits)

    @property
    def max_value(self) -> float:
        return math.ldexp(self.max_int, -self.frac_bits)

    @property
    def storage_bits(self) -> int:
        """Bits of the narrowest C integer type that holds every value of this type."""
        for bits in (8, 16, 32, 64):
            if self.width <= bits:
                return bits
        raise FixedPointError(f"{self} is wider than 64 bits")

    @property
    def c_type(self) -> str:
        """The C storage type. Unsigned types use unsigned C integers."""
        return f"{'' if self.signed else 'u'}int{self.storage_bits}_t"

    def with_(self, **changes) -> "Fixed":
        fields = dict(
            width=self.width, int_bits=self.int_bits, signed=self.signed,
            rounding=self.rounding, overflow=self.overflow,
        )
        fields.update(changes)
        return Fixed(**fields)

    def hls(self) -> str:
        """The Vivado HLS spelling, e.g. ``ap_fixed<8,3,AP_RND,AP_SAT>``."""
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.int_bits},AP_{self.rounding.value},AP_{self.overflow.value}>"

    def __str__(self) -> str:
        base = "fixed" if self.signed else "ufixed"
        return f"{base}<{self.width},{self.int_bits},{self.rounding.value},{self.overflow.value}>"

    def to_json(self) -> str:
        return str(self)

    @classmethod
    def parse(cls, text: str) -> "Fixed":
        """Read ``fixed<8,3>``, ``ufixed<8,3,RND,SAT>`` or an ``ap_fixed<...>`` spelling."""
        m = re.fullmatch(
            r"\s*(?:ap_)?(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(?:AP_)?(\w+)\s*)?(?:,\s*(?:AP_)?(\w+)\s*)?>\s*",
            text,
        )
        if not m:
            raise FixedPointError(f"cannot read fixed-point type {text!r}; expected e.g. 'fixed<8,3,RND,SAT>'")
        unsigned, width, int_bits, rounding, overflow = m.groups()
        try:
            return cls(
                int(width), int(int_bits), signed=not unsigned,
                rounding=Rounding(rounding or "TRN"), overflow=Overflow(overflow or "WRAP"),
            )
        except ValueError as exc:
            raise FixedPointError(f"fixed-point type {text!r}: {exc}") from None


def _as_int64(q) -> np.ndarray:
    arr = np.asarray(q)
    if arr.dtype.kind not in "iu":
        raise FixedPointError(f"fixed-point integers must have an integer dtype, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def shift_round(q, shift: int, rounding: Rounding) -> np.ndarray:
    """Drop ``shift`` fraction bits (``shift > 0``) or append zeros (``shift <= 0``)."""
    q = _as_int64(q)
    if shift <= 0:
        return q << np.int64(-shift)
    if shift > MAX_WIDTH:
        # |q| < 2**62, so only the sign survives a shift this long.
        if rounding is Rounding.TRN:
            return np.where(q < 0, np.int64(-1), np.int64(0))
        return np.zeros_like(q)
    if rounding is Rounding.RND:
        q = q + np.int64(1 << (shift - 1))
    elif rounding is Rounding.RND_CONV:
        floor = q >> np.int64(shift)
        rest = q - (floor << np.int64(shift))  # in [0, 2**shift)
        half = np.int64(1 << (shift - 1))
        return floor + ((rest > half) | ((rest == half) & (floor & 1 == 1)))
    return q >> np.int64(shift)


def apply_overflow(q, to: Fixed) -> np.ndarray:
    q = _as_int64(q)
    if to.overflow is Overflow.SAT:
        return np.clip(q, to.min_int, to.max_int)
    low = q & np.int64((1 << to.width) - 1)
    if to.signed:
        low = np.where(low > to.max_int, low - np.int64(1 << to.width), low)
    return low


def cast(q, frac_in: int, to: Fixed) -> np.ndarray:
    """Convert integers with ``frac_in`` fraction bits to type ``to`` (round, then overflow)."""
    return apply_overflow(shift_round(q, frac_in - to.frac_bits, to.rounding), to)


def quantize(x, to: Fixed) -> np.ndarray:
    """Float values to integers of type ``to``, with ``to``'s rounding and overflow."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise WeightError(f"cannot quantize non-finite value {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    limit = float(1 << MAX_WIDTH)
    scaled = np.clip(np.ldexp(x, to.frac_bits), -limit, limit)  # exact but for underflow
    # A negative value so small that the scale underflows to zero still floors to -1.
    floor = np.where((scaled == 0) & (x < 0), -1.0, np.floor(scaled))
    if to.rounding is Rounding.RND:
        # Not floor(scaled + 0.5): that add rounds when |scaled| nears 2**52. The remainder
        # scaled - floor is exact (Sterbenz), so comparing it with one half is too.
        floor = floor + (scaled - floor >= 0.5)
    elif to.rounding is Rounding.RND_CONV:
        rest = scaled - floor
        floor = floor + ((rest > 0.5) | ((rest == 0.5) & (np.mod(floor, 2) == 1)))
    return apply_overflow(floor.astype(np.int64), to)


def to_real(q, t: Fixed) -> np.ndarray:
    """Integers of type ``t`` to the real values they stand for (float64, exact to 53 bits)."""
    return np.ldexp(_as_int64(q).astype(np.float64), -t.frac_bits)


def from_grid(values, t: Fixed, what: str = "values") -> np.ndarray:
    """Exact integers of float ``values`` that already lie on ``t``'s grid and range."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise WeightError(f"{what}: contains NaN or Inf")
    scaled = np.ldexp(values, t.frac_bits)
    q = np.rint(scaled)
    off = scaled != q
    if np.any(off):
        idx = tuple(int(i) for i in np.argwhere(off)[0])
        raise WeightError(f"{what}: value {values[idx]!r} at index {idx} is not on the grid of {t}")
    q = q.astype(np.int64)
    out = (q < t.min_int) | (q > t.max_int)
    if np.any(out):
        idx = tuple(int(i) for i in np.argwhere(out)[0])
        raise WeightError(f"{what}: value {values[idx]!r} at index {idx} is outside the range of {t}")
    return q


def int_bits_for(max_abs: float, signed: bool) -> int:
    """Fewest integer bits (sign included when ``signed``) whose range covers ``max_abs``.

    The positive end of a signed type is one LSB short of a power of two; callers that
    need the exact power of two representable should add headroom.
    """
    if max_abs <= 0 or not math.isfinite(max_abs):
        return 1 if signed else 0
    bits = math.floor(math.log2(max_abs)) + 1
    return bits + (1 if signed else 0)
