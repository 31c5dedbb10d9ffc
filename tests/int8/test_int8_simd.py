"""The int8 C's DSP kernels (templates/c/hwprune_int8_simd.h) on odd shapes: fully connected
with 1..9 inputs and 1..5 outputs (4-row blocks and their remainder, inputs not a multiple
of four), convolutions with 1..5 channels, odd widths, padding and strides (im2col columns
in pairs, an odd last pixel and channel), 1x1 convolutions, depthwise convolutions of 1..9
channels (blocks of four and the rest). Each graph runs in the reference, in the host C
with the DSP instructions written in C (HWPRUNE_INT8_PORTABLE_SIMD), in the host C's
scalar kernels, and on the Cortex-M4 in the emulator; every layer's output is compared as
integers. Two graphs hold mostly-zero layers (a sparse FC, 1x1 and 2x3 convolution). The requantization's C is checked against the reference on edge values."""


import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8_layout import block_rows, depthwise_weights
from hwprune.backends.c_int8_rq import HWP_RQ_FOLDED, acc_bound, rq_arrays, smmlar_terms
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, Int8Dense, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers, multiply_by_quantized_multiplier
from tests.int8.conftest import PORTABLE, differences, host_comparisons, host_printed, run_on_mcu


def _types(rng, out_t, n):
    scales = rng.uniform(0.001, 0.01, size=n)
    mult, shift = conv_multipliers(0.05, scales, out_t.scale)
    return {**int8_types(out_t), "weight_scale": scales, "out_multiplier": mult, "out_shift": shift,
            "act_min": -128, "act_max": 127}


def _conv(rng, name, source, cin, cout, k, stride, pad, depthwise=False, zeros=0.0):
    out_t = Int8Affine(0.1, int(rng.integers(-20, 20)))
    w = rng.integers(-127, 128, size=(cout, k[0], k[1], 1 if depthwise else cin))
    w[rng.random(w.shape) < zeros] = 0
    return Int8Conv2D(name, weight=w, bias=rng.integers(-3000, 3000, size=cout), stride=stride, padding=pad,
                      depthwise=depthwise, inputs=(source,), **_types(rng, out_t, cout))


def _conv_graph(rng, cin, c1, width, sparse=False):
    """conv 3x3 (pad 1, stride 1) -> depthwise 3x3 (pad 1/2, stride 2) -> conv 1x1 -> conv 2x3 stride 2 -> depthwise
    3x3; ``sparse``: the 1x1 and 2x3 convolutions mostly zeros (their sparse kernels)."""
    layers = (
        _conv(rng, "c0", "x", cin, c1, (3, 3), (1, 1), ((1, 1), (1, 1))),
        _conv(rng, "d1", "c0", c1, c1, (3, 3), (2, 2), ((1, 1), (0, 2)), depthwise=True),
        _conv(rng, "p2", "d1", c1, c1 + 2, (1, 1), (1, 1), ((0, 0), (0, 0)), zeros=0.9 if sparse else 0.0),
        _conv(rng, "c3", "p2", c1 + 2, 3, (2, 3), (2, 1), ((0, 1), (1, 1)), zeros=0.95 if sparse else 0.0),
        _conv(rng, "d4", "c3", 3, 3, (3, 3), (1, 1), ((1, 1), (1, 1)), depthwise=True),
    )
    return Graph(f"conv{cin}x{c1}{'s' if sparse else ''}", (GraphInput("x", (5, width, cin), Int8Affine(0.05, int(rng.integers(-9, 9)))),),
                 layers)


def _fc_graph(rng, n_in, widths, zeros=0.0):
    layers, source, size = [], "x", n_in
    for i, n_out in enumerate(widths):
        out_t = Int8Affine(0.1, int(rng.integers(-20, 20)))
        w = rng.integers(-127, 128, size=(n_out, size))
        w[rng.random(w.shape) < (zeros if i == 1 else 0.0)] = 0
        layers.append(Int8Dense(f"f{i}", weight=w,
                                bias=rng.integers(-3000, 3000, size=n_out), inputs=(source,),
                                **_types(rng, out_t, n_out)))
        source, size = f"f{i}", n_out
    return Graph(f"fc{n_in}{'s' if zeros else ''}", (GraphInput("x", (n_in,), Int8Affine(0.05, int(rng.integers(-9, 9)))),), tuple(layers))


def _graphs():
    rng = np.random.default_rng(26)
    graphs = [_fc_graph(rng, n_in, widths) for n_in, widths in ((1, (5, 4)), (7, (3, 9, 1)), (9, (8, 2, 6)))]
    graphs += [_conv_graph(rng, cin, c1, width) for cin, c1, width in ((1, 4, 5), (3, 5, 4), (4, 8, 7), (5, 9, 3))]
    graphs += [_fc_graph(rng, 11, (40, 33, 3), zeros=0.9), _conv_graph(rng, 3, 16, 5, sparse=True)]
    return graphs


GRAPHS = _graphs()


def _inputs(graph, n):
    x = np.random.default_rng(3).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def test_sparse_graphs_run_the_sparse_kernels():
    from hwprune.backends.c_int8_plan import stored_dense

    assert [stored_dense(layer) for layer in GRAPHS[-2].weighted_layers()] == [True, False, True]
    assert [stored_dense(layer) for layer in GRAPHS[-1].weighted_layers()] == [True, True, False, False, True]


def test_row_blocks_and_depthwise_order_hold_every_weight_once():
    m = np.arange(7 * 6).reshape(7, 6)
    blocked = block_rows(m, 4)
    assert sorted(blocked) == list(range(42))
    assert list(blocked[:16]) == [0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15, 18, 19, 20, 21]
    assert list(blocked[16:24]) == [4, 5, 10, 11, 16, 17, 22, 23] and list(blocked[24:]) == list(range(24, 42))
    w = np.arange(5 * 2).reshape(5, 2)  # 5 channels, 2 taps
    assert list(depthwise_weights(w)) == [0, 4, 2, 6, 1, 5, 3, 7, 8, 9]


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_host_c_simd_and_scalar_equal_reference_on_every_tensor(tmp_path, graph):
    x = _inputs(graph, 12)
    for result in host_comparisons(graph, x, tmp_path):
        assert result.bit_exact, result.report()
        assert len(result.layers) == len(graph.layers)


@pytest.mark.parametrize("target, graphs", [("stm32l4r5", GRAPHS), ("mspm0g3507", GRAPHS[2:4]),
                                            ("nrf54l15", GRAPHS[5:6]), ("pic32czca90", GRAPHS[6:7])],
                         ids=("cortex-m4", "cortex-m0plus", "cortex-m33", "cortex-m7"))
def test_firmware_kernels_equal_reference(tmp_path, target, graphs):
    """The graphs cross-built (-Wall -Wextra -Werror) for the Cortex-M4 (SXTB16/SMLAD, the
    written-out loops; every graph), the M0+ (no DSP extension: the scalar kernels over the
    same weight layouts), the M33 and the M7 (DSP, one graph each)."""
    for graph in graphs:
        x = _inputs(graph, 3)
        run = run_on_mcu(graph, x, tmp_path / graph.name, target)
        want = reference.run(graph, x)
        assert np.array_equal(run.outputs, want), differences(graph.name, run.outputs, want)


@pytest.mark.parametrize("cc", ["clang", "gcc"])
def test_unoptimized_firmware_runs_the_c_loops_and_equals_reference(tmp_path, cc):
    """At -O0 the written-out assembly is left out (the channel-pair loop's group counts are
    assembler immediates, constants only once the kernel is inlined and optimized; the loops'
    operands want more registers than a build that keeps a frame pointer has): the DSP cores
    run the same kernels' C loops, with both compilers, equal to the reference."""
    for graph in (GRAPHS[5], GRAPHS[8]):  # dense and k4 convolutions, the depthwise ring and its general kernel, sparse
        x = _inputs(graph, 2)
        run = run_on_mcu(graph, x, tmp_path / f"{graph.name}{cc}", cc=cc, opt="-O0")
        want = reference.run(graph, x)
        assert np.array_equal(run.outputs, want), differences(graph.name, run.outputs, want)


def test_requantization_c_equals_reference_on_edge_values(tmp_path):
    """hwp_mbqm and hwp_rq against the reference, built plainly (the scalar cores' hwp_rq) and
    with the DSP kernels in C (hwp_rq's one-multiply-accumulate path for shifts -31..-2): the
    int32 extremes, multipliers 0, 2^30, 2^31 - 1, and accumulators whose first rounding's
    result lands on a tie of the second (x = +-(2k + 1) 2^(e-1)) or one beside it."""
    rng = np.random.default_rng(1)
    edges = np.array([0, 1, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 30, -2 ** 30, 12345, -12345], dtype=np.int64)
    acc = np.concatenate([edges, rng.integers(-2 ** 31, 2 ** 31, size=3000)])
    mult = np.concatenate([np.full(len(edges), 2 ** 31 - 1), rng.integers(2 ** 30, 2 ** 31, size=3000)])
    mult[:3] = (2 ** 30, -2 ** 31, 0)
    shift = rng.integers(-31, 8, size=len(acc))
    shift[:4] = (0, -31, 7, -1)
    # multiplier 2^30: x = (acc + 1) >> 1, so acc = 2x - 1 with x = +-(2k + 1) 2^(e-1) + {-1, 0, 1}
    e = rng.integers(2, 20, size=600)
    x = (2 * rng.integers(0, 50, size=600) + 1) * 2 ** (e - 1) * rng.choice([-1, 1], size=600) + rng.integers(-1, 2, 600)
    acc = np.concatenate([acc, 2 * x - 1, [2 ** 31 - 1, -2 ** 31, -1, 1, -2 ** 31, 2 ** 31 - 1]])
    mult = np.concatenate([mult, np.full(600, 2 ** 30), [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 30, 2 ** 30, 0, 2 ** 30]])
    shift = np.concatenate([shift, -e, [-2, -2, -2, -2, -31, -31]])
    rows = ",".join(f"{{{a},{m},{s}}}" for a, m, s in zip(acc, mult, shift))
    source = tmp_path / "rq.c"
    source.write_text(f'#include <stdio.h>\n#include "hwprune_int8.h"\nstatic const long long v[][3] = {{{rows}}};\n'
                      "int main(void) { for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) "
                      "printf(\"%ld %ld\\n\", (long)hwp_mbqm((int32_t)v[i][0], (int32_t)v[i][1], (int)v[i][2]), "
                      "(long)hwp_rq((int32_t)v[i][0], (int32_t)v[i][1], (int)v[i][2], 0, -128, 127)); "
                      "return 0; }\n")
    want = np.array([int(multiply_by_quantized_multiplier(np.array([a]), int(m), int(s))[0])
                     for a, m, s in zip(acc, mult, shift)])
    for defines in ((), PORTABLE):
        got = host_printed(source, defines).reshape(-1, 2)
        bad = np.flatnonzero(got[:, 0] != want)
        assert not len(bad), [(int(acc[i]), int(mult[i]), int(shift[i]), int(got[i, 0]), int(want[i])) for i in bad[:5]]
        # hwp_rq (the DSP kernels' requantization, clamped to int8) for every multiplier but INT32_MIN;
        # the output's zero point 0 and clamp [-128, 127] keep results near zero (the ties) visible
        usable = mult != -2 ** 31
        bad = np.flatnonzero(usable & (got[:, 1] != np.clip(want, -128, 127)))
        assert not len(bad), (defines, [(int(acc[i]), int(mult[i]), int(shift[i]), int(got[i, 1]), int(want[i]))
                                        for i in bad[:5]])


def test_folded_requantization_equals_reference(tmp_path):
    """hwp_rq's folded form (one SMMLAR: backends/c_int8_rq.py), built plainly and with the DSP
    kernels in C, against the reference on the sums its bound allows: each channel's extremes
    +-bound, zero, -1, and sums whose first rounding lands on a tie of the second or beside it,
    with and without the tie term (out_zp above act_min, and equal to it under a ReLU clamp).
    The Cortex-M4's assembly runs the same form in the MLPerf Tiny and int8 chain tests."""
    rng = np.random.default_rng(11)
    cases = []  # (acc, multiplier, shift, out_zp, act_min)
    for out_zp, act_min in ((-5, -128), (17, -128), (-128, -128), (-3, -3), (40, 40)):
        c = 40
        w = rng.integers(-127, 128, size=(c, 64))
        bias = rng.integers(-2 ** 16, 2 ** 16, size=c)
        bound = acc_bound(w, bias, 255)
        mult = rng.integers(2 ** 30, 2 ** 31, size=c)
        mult[:2] = (0, 2 ** 30)
        shift = -rng.integers(1, 16, size=c)
        terms = smmlar_terms(mult, shift, out_zp, act_min, bound)
        assert terms is not None and terms.tie == (out_zp > act_min)
        for o in range(c):
            b = int(bound[o])
            e = int(-shift[o])
            accs = [b, -b, 0, -1, 1] + list(rng.integers(-b, b + 1, size=20))
            if mult[o] == 2 ** 30:  # x = (acc + 1) >> 1: ties x = +-(2k + 1) 2^(e-1), and beside them
                for k in range(4):
                    for d in (-1, 0, 1):
                        x = ((2 * k + 1) << (e - 1)) + d
                        accs += [2 * x - 1, -2 * x - 1]
            cases += [(a, int(mult[o]), int(terms.words()[o]), int(shift[o]), out_zp, act_min,
                       HWP_RQ_FOLDED + int(terms.tie)) for a in accs if abs(a) <= b]
    rows = ",".join(f"{{{a},{m},{wd},{z},{lo}}}" for a, m, wd, _, _, lo, z in cases)
    source = tmp_path / "rqf.c"
    source.write_text(f'#include <stdio.h>\n#include "hwprune_int8.h"\nstatic const long long v[][5] = {{{rows}}};\n'
                      "int main(void) { for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) printf(\"%ld\\n\", "
                      "(long)hwp_rq((int32_t)v[i][0], (int32_t)v[i][1], (int32_t)v[i][2], (int32_t)v[i][3], "
                      "(int32_t)v[i][4], 127)); return 0; }\n")
    want = np.array([min(max(int(multiply_by_quantized_multiplier(np.array([a]), m, s)[0]) + zp, lo), 127)
                     for a, m, _, s, zp, lo, _ in cases])
    assert len(cases) > 5000 and len(set(want.tolist())) > 200
    for defines in ((), PORTABLE):
        got = host_printed(source, defines)
        bad = np.flatnonzero(got != want)
        assert not len(bad), (defines, [(cases[i][0], cases[i][1], cases[i][3], cases[i][4], int(got[i]), int(want[i]))
                                        for i in bad[:5]])


def test_folded_requantization_refused_where_a_step_could_wrap():
    """rq_arrays keeps TFLite's shifts and the output zero point where the folded form is not
    exact: a sum whose double could wrap, a left shift, a tie term with e = 0, an A too wide."""
    out_t = Int8Affine(0.1, -5)
    in_t = Int8Affine(0.05, 3)

    def layer(bias, shift, act_min=-128):
        mult = np.full(2, 2 ** 30 + 12345)
        return Int8Dense("fc", weight=np.full((2, 8), 100), bias=np.asarray(bias), inputs=("x",), **int8_types(out_t),
                         weight_scale=np.full(2, 0.01), out_multiplier=mult, out_shift=np.asarray(shift),
                         act_min=act_min, act_max=127)

    words, zp = rq_arrays(layer([10, -10], [-7, -9]), in_t)
    assert zp == HWP_RQ_FOLDED + 1 and list(words & 0xFF) == [7, 9]  # out_zp -5 > act_min -128: the tie term
    assert rq_arrays(layer([10, -10], [-7, -9], act_min=-5), in_t)[1] == HWP_RQ_FOLDED
    for bias, shift in (([2 ** 30, 0], [-7, -7]), ([0, 0], [1, -7]), ([0, 0], [0, -7]), ([0, 0], [-22, -7])):
        shifts, zp = rq_arrays(layer(bias, shift), in_t)
        assert zp == -5 and list(shifts) == shift, (bias, shift)
