"""The generated firmware helpers against the Python numeric model, and C names that do not clash.

- ``hwprune_float.h``'s ``hwprune_quantize_f32`` equals ``ir.fixed.quantize`` on every
  value of every 8-bit type (int_bits -3..11, signed and unsigned, TRN/RND/RND_CONV x WRAP/SAT),
  the ties halfway between them and values far outside their range, and on 10,000
  random floats (any exponent, subnormals, exact ties, out of range);
- a generated ``<name>_quantize_input`` / ``_dequantize_output`` / ``_argmax`` equal the
  reference's input quantizer, ``to_real`` and numpy's argmax;
- two exports named ``a`` and ``b`` link into one program;
- ``examples/firmware/main.c`` builds against an export and prints the reference's classes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.errors import OptionError, ToolchainError
from hwprune.harness.build import WARNINGS, compile_executable, compile_object, find_cc
from hwprune.ir.graph import check_c_name
from hwprune.paths import templates_dir
from hwprune.ir.fixed import Fixed, Overflow, Rounding, quantize, to_real

from codegen_graphs import calibrated_mlp

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "firmware" / "main.c"
STRICT = (*WARNINGS, "-Wconversion", "-Wpedantic", "-Wshadow", "-O2")
MODES = [(r, o) for r in Rounding for o in Overflow]
ROW = np.dtype([("x", "=f4"), ("args", "=i4", (5,))])


@pytest.fixture(scope="module")
def compiler():
    try:
        return find_cc()
    except ToolchainError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def float_c(compiler, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("float_c") / "test_float_c"
    return compile_executable([HERE / "test_float_c.c"], out, [templates_dir() / "c"], flags=STRICT, compiler=compiler)


def _run_c(exe: Path, x: np.ndarray, types: list[Fixed], work: Path) -> tuple[np.ndarray, np.ndarray]:
    """(values, out-of-range flags) of hwprune_quantize_f32 for x[i] in types[i]."""
    rows = np.zeros(len(x), dtype=ROW)
    rows["x"] = x
    rows["args"] = [(t.width, t.frac_bits, int(t.signed), {Rounding.TRN: 0, Rounding.RND: 1, Rounding.RND_CONV: 2}[t.rounding],
                     int(t.overflow is Overflow.SAT)) for t in types]
    rows.tofile(work / "in.bin")
    done = subprocess.run([str(exe), str(work / "in.bin"), str(work / "out.bin")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = np.fromfile(work / "out.bin", dtype="=i8").reshape(-1, 2)
    return out[:, 0], out[:, 1]


def _python(x32: np.ndarray, t: Fixed) -> tuple[np.ndarray, np.ndarray]:
    """quantize on the float32 values (as doubles), and whether each was outside the range."""
    x = x32.astype(np.float64)
    unbounded = quantize(x, Fixed(62, 62 - t.frac_bits, True, t.rounding, Overflow.SAT))
    return quantize(x, t), ((unbounded < t.min_int) | (unbounded > t.max_int)).astype(np.int64)


def _compare(exe, cases: list[tuple[Fixed, np.ndarray]], work: Path) -> int:
    x = np.concatenate([v for _, v in cases]).astype(np.float32)
    types = [t for t, v in cases for _ in range(len(v))]
    got, got_flag = _run_c(exe, x, types, work)
    expected = np.concatenate([_python(v.astype(np.float32), t)[0] for t, v in cases])
    flag = np.concatenate([_python(v.astype(np.float32), t)[1] for t, v in cases])
    bad = np.flatnonzero((got != expected) | (got_flag != flag))
    if bad.size:
        i = int(bad[0])
        pytest.fail(f"{bad.size} of {len(x)} differ; first: x = {float(x[i])!r} "
                    f"to {types[i]}: Python {expected[i]} (outside {flag[i]}), C {got[i]} (outside {got_flag[i]})")
    return len(x)


def _eight_bit_types():
    for int_bits in range(-3, 12):
        for signed in (True, False):
            for rounding, overflow in MODES:
                yield Fixed(8, int_bits, signed, rounding, overflow)


def test_c_quantize_equals_python_on_every_8_bit_value_tie_and_out_of_range(float_c, tmp_path):
    cases = []
    for t in _eight_bit_types():
        # Every integer of the type and 256 beyond each end, each at +0, +1/4, +1/2 (the tie), +3/4 LSB.
        k = np.arange(t.min_int - 256, t.max_int + 257, dtype=np.float64)
        values = (k[:, None] + np.array([0.0, 0.25, 0.5, 0.75])[None, :]).reshape(-1)
        cases.append((t, np.ldexp(values, -t.frac_bits)))
    assert _compare(float_c, cases, tmp_path) == 30 * len(MODES) * 768 * 4  # 30 types per mode, 512 + 256 integers each


def _random_floats(rng, t: Fixed, n: int) -> np.ndarray:
    """Floats of every kind: any exponent, subnormals, exact ties, in and far out of range."""
    parts = [
        rng.uniform(3 * t.min_value - 1, 3 * t.max_value + 1, n // 4),                        # around the range
        np.ldexp(rng.integers(t.min_int - 64, t.max_int + 64, n // 4) + 0.5, -t.frac_bits),   # exact ties
        rng.integers(0, 0x7F800000, n // 4, dtype=np.int64).astype(np.uint32).view(np.float32)
        * rng.choice([-1, 1], n // 4),                                                         # any finite float
        rng.normal(scale=t.lsb, size=n - 3 * (n // 4)),                                        # near zero
    ]
    return np.concatenate(parts).astype(np.float32)


def test_c_quantize_equals_python_on_10000_random_floats(float_c, rng, tmp_path):
    types = [Fixed(8, 3, True, Rounding.RND, Overflow.SAT), Fixed(8, 0, False, Rounding.RND, Overflow.SAT),
             Fixed(8, 9, True, Rounding.TRN, Overflow.WRAP), Fixed(12, -2, True, Rounding.RND, Overflow.WRAP),
             Fixed(16, 4, False, Rounding.TRN, Overflow.SAT), Fixed(32, 20, True, Rounding.RND, Overflow.SAT),
             Fixed(50, 10, True, Rounding.RND, Overflow.WRAP), Fixed(6, 70, True, Rounding.TRN, Overflow.SAT),
             Fixed(6, -80, True, Rounding.RND, Overflow.SAT)]
    cases = [(t, _random_floats(rng, t, 10_000)) for t in types]
    assert _compare(float_c, cases, tmp_path) == 10_000 * len(types)


def test_nan_gives_zero_and_infinity_the_largest_float(float_c, tmp_path):
    t = Fixed(8, 3, True, Rounding.RND, Overflow.SAT)
    wrap = t.with_(overflow=Overflow.WRAP)
    big = np.float32(3.4e38)
    x = np.array([np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf], dtype=np.float32)
    got, outside = _run_c(float_c, x, [t, t, t, wrap, wrap, wrap], tmp_path)
    expected = [0, 127, -128, 0, int(quantize(float(big), wrap)), int(quantize(-float(big), wrap))]
    assert got.tolist() == expected and outside.tolist() == [1] * 6


# -- the generated helpers of one export ------------------------------------------------------


def _build_helpers(compiler, graph, work: Path) -> Path:
    export_c(graph, work / "c")
    return compile_executable([HERE / "helpers_main.c", work / "c" / "model.c"], work / "helpers", [work / "c"],
                              flags=STRICT, compiler=compiler)


def test_generated_helpers_equal_the_reference(compiler, rng, tmp_path):
    graph, _ = calibrated_mlp("sensor", [8, 12, 5], rng, softmax=True)
    t = graph.input_t
    assert t.width == 8
    exe = _build_helpers(compiler, graph, tmp_path)
    k = np.arange(t.min_int - 40, t.max_int + 41, dtype=np.float64)
    grid = np.ldexp((k[:, None] + np.array([0.0, 0.5, 0.3])[None, :]).reshape(-1), -t.frac_bits)
    x = np.concatenate([grid, _random_floats(rng, t, 10_000)]).astype(np.float32)
    x = np.concatenate([x, np.zeros(-len(x) % 8, dtype=np.float32)]).reshape(-1, 8)
    x.tofile(tmp_path / "x.bin")
    done = subprocess.run([str(exe), str(tmp_path / "x.bin"), str(tmp_path / "out.bin")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    raw = np.fromfile(tmp_path / "out.bin", dtype=np.uint8)
    per_vector = 8 * 8 + 8 + 5 * 8 + 5 * 4 + 8
    assert raw.size == per_vector * len(x)
    raw = raw.reshape(len(x), per_vector)
    q = raw[:, :64].copy().view("=i8")
    outside = raw[:, 64:72].copy().view("=i8")[:, 0]
    y = raw[:, 72:112].copy().view("=i8")
    y_float = raw[:, 112:132].copy().view("=f4")
    classes = raw[:, 132:140].copy().view("=i8")[:, 0]

    expected_q = reference.quantize_input(graph, x.astype(np.float64))
    assert np.array_equal(q, expected_q), np.argwhere(q != expected_q)[:5]
    unbounded = quantize(x.astype(np.float64), Fixed(62, 62 - t.frac_bits, True, t.rounding, Overflow.SAT))
    assert np.array_equal(outside, ((unbounded < t.min_int) | (unbounded > t.max_int)).sum(axis=1))
    expected_y = reference.run(graph, expected_q)
    assert np.array_equal(y, expected_y)
    assert np.array_equal(y_float, to_real(expected_y, graph.output_t).astype(np.float32))
    assert np.array_equal(classes, expected_y.argmax(axis=1))
    assert len(set(classes.tolist())) > 1


def test_float_helpers_compile_out_and_the_banner_says_logits(compiler, rng, tmp_path):
    graph, _ = calibrated_mlp("nofpu", [6, 4, 3], rng, softmax=True)
    export_c(graph, tmp_path)
    obj = compile_object(tmp_path / "model.c", tmp_path / "model.o", [tmp_path], ("HWPRUNE_NO_FLOAT",),
                         flags=STRICT, compiler=compiler)
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True).stdout if _has("nm") else ""
    if symbols:
        assert "nofpu_argmax" in symbols and "nofpu_predict" in symbols
        assert "quantize_input" not in symbols and "dequantize_output" not in symbols
    header = (tmp_path / "model.h").read_text()
    assert "Outputs are logits (the model's final Softmax is not computed)." in header
    assert "(softmax" not in header and "(softmax" not in (tmp_path / "model.c").read_text()
    assert "int nofpu_quantize_input(const float *x, nofpu_input_t *q);" in header
    assert "void nofpu_dequantize_output(const nofpu_output_t *y, float *out);" in header


def _has(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


def test_two_models_named_a_and_b_link_into_one_program(compiler, rng, tmp_path):
    graphs = {}
    for name, sizes in (("a", [6, 9, 4]), ("b", [5, 7, 3])):
        graph, _ = calibrated_mlp("model", sizes, rng, sparsity=0.4)
        graph = graph.replace(name=check_c_name(name))
        export_c(graph, tmp_path / name, "csr" if name == "a" else "dense")
        graphs[name] = graph
    objects = [compile_object(tmp_path / n / "model.c", tmp_path / f"{n}.o", [tmp_path / n], flags=STRICT,
                              compiler=compiler) for n in ("a", "b")]
    main = compile_object(HERE / "two_models_main.c", tmp_path / "main.o", [tmp_path], flags=STRICT, compiler=compiler)
    exe = tmp_path / "two"
    done = subprocess.run([*compiler.command, str(main), *map(str, objects), "-o", str(exe)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    x_a, x_b = rng.normal(size=(1, 6)), rng.normal(size=(1, 5))
    np.concatenate([x_a, x_b], axis=1).astype(np.float32).tofile(tmp_path / "x.bin")
    out = subprocess.run([str(exe), str(tmp_path / "x.bin")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = [[int(v) for v in line.split()] for line in out.stdout.splitlines()]
    expected = [reference.run(graphs["a"], reference.quantize_input(graphs["a"], x_a.astype(np.float32)))[0],
                reference.run(graphs["b"], reference.quantize_input(graphs["b"], x_b.astype(np.float32)))[0]]
    assert got == [e.tolist() for e in expected]


def test_c_names_are_checked():
    assert check_c_name("sensor_2") == "sensor_2"
    for bad, why in (("2fast", "not a C identifier"), ("my-model", "not a C identifier"), ("int", "C keyword"),
                     ("_x", "reserved"), ("", "not a C identifier")):
        with pytest.raises(OptionError, match=why):
            check_c_name(bad)


def test_the_firmware_example_builds_and_prints_the_reference_classes(compiler, rng, tmp_path):
    graph, _ = calibrated_mlp("digits", [64, 16, 10], rng, sparsity=0.8, softmax=True, signed_input=False)
    export_c(graph, tmp_path / "c")
    exe = compile_executable([EXAMPLE, tmp_path / "c" / "model.c"], tmp_path / "classify", [tmp_path / "c"],
                             flags=STRICT, compiler=compiler)
    x = np.abs(rng.normal(size=(12, 64))).astype(np.float32)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in x) + "\n"
    done = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    classes = [int(m) for m in re.findall(r"class (\d+)", done.stdout)]
    expected = reference.run(graph, reference.quantize_input(graph, x.astype(np.float64))).argmax(axis=1)
    assert classes == expected.tolist()
