"""hwp_conv_k4_s8 (templates/c/hwprune_int8_simd.h): dense convolutions whose input channels
are not a multiple of four, each filter in hwp_k4_index's order (every kernel row's whole words, then
the rows' last bytes) padded with zeros to a multiple of four weights.
Input channels 1..9 (the multiples of four take hwp_conv_dense_s8), 1x1, 3x3, 2x3, 1x2, 1x3
and 3x1 kernels with strides and padding that put receptive fields across every border,
1..5 output channels (the odd last one), a filter of zeros and a filter with one nonzero
weight. Each layer's output from the host C (DSP instructions written in C, and the
scalar kernels) and from the Cortex-M4 in the emulator equals the reference's, element by
element. The M4 run also checks the per-layer cycle attribution (``run_mcu``'s layer_cycles)."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8 import layer_kernels
from hwprune.backends.c_int8_plan import k4_padded
from hwprune.backends.c_int8_layout import k4_filters, padded_filters
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers
from tests.int8.conftest import differences, host_comparisons, run_on_mcu

# (input channels, output channels, kernel, stride, padding ((top, bottom), (left, right)), input h x w)
SHAPES = (
    (1, 3, (3, 3), (1, 1), ((1, 1), (1, 1)), (4, 5)),
    (2, 1, (1, 1), (1, 1), ((0, 0), (0, 0)), (3, 3)),
    (3, 5, (3, 3), (2, 2), ((0, 1), (0, 1)), (6, 6)),
    (3, 4, (3, 3), (2, 2), ((1, 1), (1, 1)), (5, 7)),
    (5, 2, (2, 3), (2, 1), ((0, 1), (1, 1)), (5, 4)),
    (6, 3, (1, 2), (1, 1), ((0, 0), (1, 0)), (2, 3)),
    (7, 5, (1, 1), (1, 1), ((0, 0), (0, 0)), (3, 5)),
    (9, 4, (3, 3), (1, 2), ((2, 0), (0, 2)), (4, 4)),
    (3, 2, (1, 3), (1, 2), ((0, 0), (1, 1)), (2, 7)),
    (2, 3, (3, 1), (1, 1), ((1, 1), (0, 0)), (4, 3)),
)


def _graph(index, cin, cout, kernel, stride, pad, hw):
    rng = np.random.default_rng(100 + index)
    w = rng.integers(-127, 128, size=(cout, *kernel, cin))
    if cout > 2:
        w[1] = 0  # a filter of zeros
        w[2] = 0
        w[2, kernel[0] - 1, 0, cin - 1] = -127  # a filter with one nonzero weight
    out_t = Int8Affine(0.1, int(rng.integers(-20, 20)))
    scales = rng.uniform(0.001, 0.01, size=cout)
    mult, shift = conv_multipliers(0.05, scales, out_t.scale)
    layer = Int8Conv2D("c", weight=w, bias=rng.integers(-3000, 3000, size=cout), stride=stride, padding=pad,
                       inputs=("x",), **int8_types(out_t), weight_scale=scales, out_multiplier=mult, out_shift=shift,
                       act_min=-128, act_max=127)
    x_t = Int8Affine(0.05, int(rng.integers(-9, 9)))
    return Graph(f"k4{index}c{cin}", (GraphInput("x", (*hw, cin), x_t),), (layer,))


GRAPHS = [_graph(i, *shape) for i, shape in enumerate(SHAPES)]


def _inputs(graph, n):
    x = np.random.default_rng(7).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def test_padded_filters_append_zeros_up_to_words():
    m = np.arange(2 * 27).reshape(2, 27) + 1
    padded = padded_filters(m)
    assert padded.shape == (2, 28)
    assert list(padded[0]) == [*range(1, 28), 0] and list(padded[1]) == [*range(28, 55), 0]
    assert padded_filters(np.ones((3, 8))).shape == (3, 8)  # already words: unchanged
    assert padded_filters(np.ones((1, 1))).tolist() == [[1, 0, 0, 0]]


@pytest.mark.parametrize("kh, kw, cin", [(3, 3, 3), (3, 3, 1), (1, 3, 3), (2, 3, 5), (3, 1, 2), (10, 4, 1), (1, 1, 7)])
def test_k4_filters_put_each_rows_whole_words_first_then_the_rows_last_bytes(kh, kw, cin):
    """Weight (dy, dx, c) sits where hwp_k4_index (templates/c/hwprune_int8_simd.h) puts byte
    j = dx * cin + c of kernel row dy; the rest is zeros, as many as padded_filters appends."""
    w = np.arange(1, 2 * kh * kw * cin + 1).reshape(2, kh, kw, cin)
    got = k4_filters(w)
    row, a4 = kw * cin, kw * cin // 4 * 4
    assert got.shape == padded_filters(w.reshape(2, -1)).shape
    seen = set()
    for dy in range(kh):
        for j in range(row):
            k = dy * a4 + j if j < a4 else kh * a4 + dy * (row - a4) + (j - a4)
            assert list(got[:, k]) == list(w[:, dy, j // cin, j % cin])
            seen.add(k)
    assert sorted(seen) == list(range(kh * row)) and not got[:, kh * row:].any()


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_host_c_simd_and_scalar_equal_reference(tmp_path, graph):
    assert all(k4_padded(layer) for layer in graph.weighted_layers())
    assert layer_kernels(graph) == ["hwp_conv_k4_s8"]
    x = _inputs(graph, 10)
    for result in host_comparisons(graph, x, tmp_path):
        assert result.bit_exact, result.report()


def test_firmware_equals_reference_and_charges_each_layer(tmp_path):
    for graph in (GRAPHS[0], GRAPHS[2], GRAPHS[4], GRAPHS[7], GRAPHS[8]):
        x = _inputs(graph, 3)
        run = run_on_mcu(graph, x, tmp_path / graph.name)
        want = reference.run(graph, x)
        assert np.array_equal(run.outputs, want), differences(graph.name, run.outputs, want)
        # one column per layer, then predict's own code and the harness; together the whole run
        assert run.layer_cycles.shape == (len(graph.layers) + 2,)
        assert run.layer_cycles.sum() == pytest.approx(run.cycles)
        assert run.layer_cycles[0] > 0.9 * run.cycles


def test_mbqm_small_equals_reference_on_edge_values(tmp_path):
    """hwp_mbqm_small (ADD's scaling, one multiply-add for shifts -31..-2) against the
    reference on int32 extremes, every shift -31..0, multipliers 0, 2^30, 2^31 - 1, and
    accumulators whose first rounding lands on a tie of the second or beside it."""
    import subprocess

    from hwprune.harness.build import HOST_FLAGS, find_cc
    from hwprune.paths import templates_dir
    from hwprune.ir.int8_types import multiply_by_quantized_multiplier

    rng = np.random.default_rng(5)
    edges = np.array([0, 1, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 30, -2 ** 30, 7 << 20, -(7 << 20)], dtype=np.int64)
    acc = np.concatenate([np.repeat(edges, 32), rng.integers(-2 ** 31, 2 ** 31, size=2000)])
    shift = np.concatenate([np.tile(-np.arange(32), len(edges)), rng.integers(-31, 1, size=2000)])
    mult = rng.integers(2 ** 30, 2 ** 31, size=len(acc))
    mult[:3 * 32] = np.repeat([0, 2 ** 30, 2 ** 31 - 1], 32)
    e = rng.integers(2, 20, size=600)  # multiplier 2^30: x = (acc + 1) >> 1; ties x = +-(2k + 1) 2^(e-1)
    x = (2 * rng.integers(0, 50, size=600) + 1) * 2 ** (e - 1) * rng.choice([-1, 1], size=600) + rng.integers(-1, 2, 600)
    acc, mult, shift = (np.concatenate([acc, 2 * x - 1]), np.concatenate([mult, np.full(600, 2 ** 30)]),
                        np.concatenate([shift, -e]))
    rows = ",".join(f"{{{a},{m},{s}}}" for a, m, s in zip(acc, mult, shift))
    source = tmp_path / "mbqm.c"
    source.write_text(f'#include <stdio.h>\n#include "hwprune_int8.h"\nstatic const long long v[][3] = {{{rows}}};\n'
                      "int main(void) { for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) printf(\"%ld\\n\", "
                      "(long)hwp_mbqm_small((int32_t)v[i][0], (int32_t)v[i][1], (int)v[i][2])); return 0; }\n")
    want = np.array([int(multiply_by_quantized_multiplier(np.array([a]), int(m), int(s))[0])
                     for a, m, s in zip(acc, mult, shift)])
    exe = tmp_path / "mbqm"
    subprocess.run([*find_cc().command, *HOST_FLAGS, "-I", str(templates_dir() / "c"), "-o", str(exe), str(source)],
                   check=True, capture_output=True, timeout=120)
    got = np.array([int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                                                    check=True).stdout.split()])
    bad = np.flatnonzero(got != want)
    assert not len(bad), [(int(acc[i]), int(mult[i]), int(shift[i]), int(got[i]), int(want[i])) for i in bad[:5]]
