"""templates/c/hwprune_fixed.h against hwprune.ir.fixed.cast, bit for bit.

The C functions take ``shift = frac_in - to.frac_bits`` plus the destination's width,
signedness, rounding and overflow; ``int_bits`` and ``frac_in`` enter only through that
shift. The sweep enumerates types (int_bits below zero and above the width included)
and frac_in values, and runs each distinct C argument set once on every source integer
of a 12-bit range. One compilation per session (with UBSan when the compiler has it,
so signed overflow or a bad shift in the header fails the run), one process per batch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprune.errors import ToolchainError
from hwprune.harness.build import WARNINGS, compile_executable, find_cc
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, Rounding, cast, quantize
from hwprune.paths import templates_dir

DRIVER = Path(__file__).with_suffix(".c")
MODES = [(r, o) for r in Rounding for o in Overflow]
SOURCE_LO, SOURCE_HI = -(1 << 11), (1 << 11) - 1


@pytest.fixture(scope="session")
def fixed_c(tmp_path_factory) -> Path:
    try:
        compiler = find_cc()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("fixed_c") / "test_fixed_c"
    strict = (*WARNINGS, "-pedantic", "-O2")
    sanitize = ("-fsanitize=undefined", "-fno-sanitize-recover=undefined")
    try:
        return compile_executable([DRIVER], out, [templates_dir() / "c"], flags=(*strict, *sanitize), compiler=compiler)
    except ToolchainError:
        # A compiler without UBSan still checks the values.
        return compile_executable([DRIVER], out, [templates_dir() / "c"], flags=strict, compiler=compiler)


def _run(exe: Path, *args) -> None:
    out = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{exe.name} {args[0]} failed: {out.stderr}"


def _code(t: Fixed) -> tuple[int, int, int, int]:
    rounding = {Rounding.TRN: 0, Rounding.RND: 1, Rounding.RND_CONV: 2}[t.rounding]  # the HWPRUNE_* codes
    return t.width, int(t.signed), rounding, int(t.overflow is Overflow.SAT)


def _sweep_types():
    for width in range(1, 9):
        for int_bits in range(-3, width + 4):
            for signed in (True, False):
                for rounding, overflow in MODES:
                    yield Fixed(width, int_bits, signed, rounding, overflow)


# Shifts from about -22 (sources move far past the type: left-shift overflow) to +33
# (past 32: everything but the sign shifts out), through zero.
FRAC_IN = (-11, -3, 0, 2, 5, 9, 14, 20, 30)


def test_sweep_covers_left_right_and_no_shift():
    shifts = {f - t.frac_bits for t in _sweep_types() for f in FRAC_IN}
    assert min(shifts) < -20 and 0 in shifts and max(shifts) > 30


def test_c_cast_equals_python_cast_exhaustively_on_small_types(fixed_c, tmp_path):
    # Distinct C argument sets, each standing for every (type, frac_in) that maps to it.
    combos: dict[tuple, tuple[Fixed, int]] = {}
    for t in _sweep_types():
        for frac_in in FRAC_IN:
            combos.setdefault((frac_in - t.frac_bits, *_code(t)), (t, frac_in))
    keys = sorted(combos)
    (tmp_path / "combos.bin").write_bytes(np.array(keys, dtype=np.int32).tobytes())
    _run(fixed_c, "sweep", tmp_path / "combos.bin", SOURCE_LO, SOURCE_HI, tmp_path / "o32.bin", tmp_path / "o64.bin")

    sources = np.arange(SOURCE_LO, SOURCE_HI + 1, dtype=np.int64)
    expected = np.stack([cast(sources, frac_in, t) for t, frac_in in (combos[k] for k in keys)])
    for path in ("o32.bin", "o64.bin"):
        got = np.fromfile(tmp_path / path, dtype=np.int16).reshape(len(keys), sources.size).astype(np.int64)
        if not np.array_equal(got, expected):
            row, col = np.argwhere(got != expected)[0]
            t, frac_in = combos[keys[row]]
            pytest.fail(
                f"{path[1:3]}-bit C cast of {sources[col]} (frac_in {frac_in}) to {t}: "
                f"Python {expected[row, col]}, C {got[row, col]}"
            )
    assert len(keys) > 2000  # the sweep is as wide as it claims


def _case_strategy(bits: int):
    """(value, frac_in, type) with the type's range inside int<bits>_t."""
    max_width = 32 if bits == 32 else MAX_WIDTH

    @st.composite
    def case(draw):
        signed = draw(st.booleans())
        width = draw(st.integers(1, max_width if signed else max_width - (bits == 32)))
        int_bits = draw(st.integers(-8, width + 8))
        rounding, overflow = draw(st.sampled_from(MODES))
        t = Fixed(width, int_bits, signed, rounding, overflow)
        span = 31 if bits == 32 else 62
        v = draw(st.one_of(st.integers(-(1 << span), (1 << span) - 1), st.integers(-300, 300)))
        # The Python model computes a left shift in int64; keep the exact value below 2^62.
        room = 62 - max(abs(v).bit_length(), 1)
        frac_in = draw(st.integers(t.frac_bits - room, t.frac_bits + bits + 4))
        return v, frac_in, t

    return case()


@pytest.mark.parametrize("bits", [32, 64])
def test_c_cast_equals_python_cast_on_wide_types(fixed_c, tmp_path_factory, bits):
    work = tmp_path_factory.mktemp(f"cases{bits}")

    @settings(max_examples=60, deadline=None)
    @given(batch=st.lists(_case_strategy(bits), min_size=1, max_size=80))
    def check(batch):
        rows = [(v, frac_in - t.frac_bits, *_code(t), bits) for v, frac_in, t in batch]
        (work / "in.bin").write_bytes(np.array(rows, dtype=np.int64).tobytes())
        _run(fixed_c, "cases", work / "in.bin", work / "out.bin")
        got = np.fromfile(work / "out.bin", dtype=np.int64)
        expected = np.array([int(cast(np.int64(v), f, t)) for v, f, t in batch], dtype=np.int64)
        if not np.array_equal(got, expected):
            i = int(np.argwhere(got != expected)[0][0])
            v, frac_in, t = batch[i]
            pytest.fail(f"{bits}-bit C cast of {v} (frac_in {frac_in}) to {t}: Python {expected[i]}, C {got[i]}")

    check()


def test_float_quantize_equals_c_cast_of_the_exact_value(fixed_c, tmp_path_factory):
    """quantize(x) on a float that is exactly k / 2^f equals the C cast of k with f fraction bits."""
    work = tmp_path_factory.mktemp("quantize")

    @settings(max_examples=40, deadline=None)
    @given(batch=st.lists(
        st.tuples(st.integers(-(1 << 52), 1 << 52), st.integers(-20, 60), st.integers(1, 32), st.integers(-8, 40),
                  st.booleans(), st.sampled_from(MODES)),
        min_size=1, max_size=80,
    ))
    def check(batch):
        batch = [(k, f, Fixed(w, i, s, *mode)) for k, f, w, i, s, mode in batch]
        batch = [(k, f, t) for k, f, t in batch if abs(k).bit_length() + t.frac_bits - f < 62]
        if not batch:
            return
        x = np.array([np.ldexp(float(k), -f) for k, f, _ in batch])
        assert all(int(np.ldexp(xi, f)) == k for xi, (k, f, _) in zip(x, batch))  # exact floats
        rows = [(k, f - t.frac_bits, *_code(t), 64) for k, f, t in batch]
        (work / "in.bin").write_bytes(np.array(rows, dtype=np.int64).tobytes())
        _run(fixed_c, "cases", work / "in.bin", work / "out.bin")
        got = np.fromfile(work / "out.bin", dtype=np.int64)
        expected = np.array([int(quantize(xi, t)) for xi, (_, _, t) in zip(x, batch)], dtype=np.int64)
        assert np.array_equal(got, expected), [(b, e, g) for b, e, g in zip(batch, expected, got) if e != g][:3]

    check()


def test_quantize_sanity():
    t = Fixed(4, 2, True, Rounding.RND, Overflow.SAT)  # step 0.25, range [-2, 1.75]
    assert quantize([0.125, -0.125, 0.1, 1.9, -5.0, 1e300, -1e300], t).tolist() == [1, 0, 0, 7, -8, 7, -8]
    wrap = t.with_(rounding=Rounding.TRN, overflow=Overflow.WRAP)
    assert quantize([0.2, -0.2, 2.0, -2.25], wrap).tolist() == [0, -1, -8, 7]
    u = Fixed(3, 1, False, Rounding.RND, Overflow.SAT)  # step 0.25, range [0, 1.75]
    assert quantize([-0.1, 0.37, 3.0], u).tolist() == [0, 1, 7]


def test_round_half_to_even_is_numpys_round():
    # RND_CONV is ap_fixed's AP_RND_CONV and TensorFlow's round: a tie goes to the even integer.
    t = Fixed(8, 8, True, Rounding.RND_CONV, Overflow.SAT)
    x = np.arange(-40, 41) / 4.0  # every quarter: ties at each half
    assert np.array_equal(quantize(x, t), np.round(x).astype(np.int64))
    assert np.array_equal(cast(np.arange(-40, 41), 2, t), np.round(x).astype(np.int64))
    assert quantize([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], t).tolist() == [0, 2, 2, 0, -2, -2]


def test_compiler_is_found():
    assert find_cc().command
