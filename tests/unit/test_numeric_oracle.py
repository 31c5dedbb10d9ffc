"""hwprune.ir.fixed against the rational oracle (tests/unit/oracle.py)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.errors import FixedPointError, WeightError
from hwprune.ir.fixed import Fixed, Overflow, Rounding, cast, from_grid, quantize, to_real

from oracle import cast_value

MODES = [(r, o) for r in Rounding for o in Overflow]


def all_types(max_width=8):
    for width in range(1, max_width + 1):
        for int_bits in range(-2, width + 3):
            for signed in (True, False):
                for rounding, overflow in MODES:
                    yield Fixed(width, int_bits, signed, rounding, overflow)


@pytest.mark.parametrize("frac_in", [-3, 0, 1, 4, 9])
def test_cast_matches_oracle_for_every_small_type(frac_in):
    sources = np.arange(-(1 << 10), 1 << 10, dtype=np.int64)
    for t in all_types(6):
        got = cast(sources, frac_in, t)
        want = [cast_value(Fraction(int(q)) / Fraction(2) ** frac_in, t) for q in sources[::7]]
        assert np.array_equal(got[::7], np.array(want)), f"{t} frac_in={frac_in}"


@settings(max_examples=300, deadline=None)
@given(
    q=st.integers(-(1 << 40), 1 << 40),
    frac_in=st.integers(-8, 40),
    width=st.integers(1, 48),
    int_bits=st.integers(-8, 56),
    signed=st.booleans(),
    mode=st.sampled_from(MODES),
)
def test_cast_matches_oracle_on_wide_types(q, frac_in, width, int_bits, signed, mode):
    t = Fixed(width, int_bits, signed, *mode)
    if frac_in - t.frac_bits < 0 and abs(q) << (t.frac_bits - frac_in) >= 1 << 62:
        return  # outside the int64 range the reference promises
    assert int(cast(np.array([q]), frac_in, t)[0]) == cast_value(Fraction(q) / Fraction(2) ** frac_in, t)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-1e6, 1e6, allow_nan=False), width=st.integers(1, 32), int_bits=st.integers(-4, 36),
       signed=st.booleans(), mode=st.sampled_from(MODES))
def test_quantize_matches_oracle(x, width, int_bits, signed, mode):
    t = Fixed(width, int_bits, signed, *mode)
    assert int(quantize(np.array([x]), t)[0]) == cast_value(Fraction(x), t)


def test_type_ranges_and_spelling():
    t = Fixed(8, 3, True, Rounding.RND, Overflow.SAT)
    assert (t.min_int, t.max_int, t.frac_bits) == (-128, 127, 5)
    assert t.min_value == -4.0 and t.max_value == 127 / 32
    assert t.hls() == "ap_fixed<8,3,AP_RND,AP_SAT>"
    assert Fixed.parse(str(t)) == t
    assert Fixed.parse("ap_ufixed<6,2>") == Fixed(6, 2, False)
    u = Fixed(8, 0, False)
    assert (u.min_int, u.max_int, u.c_type) == (0, 255, "uint8_t")
    assert Fixed(9, 2).c_type == "int16_t" and Fixed(17, 2).c_type == "int32_t"


def test_round_half_goes_up_as_ap_rnd():
    t = Fixed(8, 8, True, Rounding.RND, Overflow.WRAP)
    assert cast(np.array([-5, -3, 3, 5]), 1, t).tolist() == [-2, -1, 2, 3]
    trn = t.with_(rounding=Rounding.TRN)
    assert cast(np.array([-5, -3, 3, 5]), 1, trn).tolist() == [-3, -2, 1, 2]


def test_from_grid_is_exact_and_strict():
    t = Fixed(8, 2, True)
    q = np.arange(-128, 128)
    assert np.array_equal(from_grid(to_real(q, t), t), q)
    with pytest.raises(WeightError, match="not on the grid"):
        from_grid(np.array([0.1]), t)
    with pytest.raises(WeightError, match="outside the range"):
        from_grid(np.array([2.0]), t)
    with pytest.raises(WeightError):
        quantize(np.array([np.nan]), t)


@pytest.mark.parametrize("bad", ["fixed<0,1>", "fixed<70,3>", "fixed<8>", "fixed<8,2,NEAREST>"])
def test_bad_types_are_errors(bad):
    with pytest.raises(FixedPointError):
        Fixed.parse(bad)


def test_quantize_rounds_exactly_near_two_to_the_52():
    # floor(x * 2**f + 0.5) in float64 rounds the add itself here; the answer must not.
    t = Fixed(29, -4, False, Rounding.RND, Overflow.WRAP)
    x = 524288.8049644289
    assert int(quantize(np.array([x]), t)[0]) == cast_value(Fraction(x), t)
    half = Fixed(60, 8, True, Rounding.RND, Overflow.SAT)
    for q in (2**51 + 1, -(2**51) - 1):
        v = (q + 0.5) / 2**52  # exactly representable, exactly half an LSB
        assert int(quantize(np.array([v]), half)[0]) == cast_value(Fraction(v), half)


@pytest.mark.parametrize("mode", MODES)
def test_quantize_subnormals_that_underflow_when_scaled(mode):
    t = Fixed(1, 3, False, *mode)  # frac_bits = -2: the scale divides by 4
    for x in (-5e-324, 5e-324, -1e-310, 1e-310):
        assert int(quantize(np.array([x]), t)[0]) == cast_value(Fraction(x), t), x
