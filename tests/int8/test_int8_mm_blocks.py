"""The dense int8 kernels' multiply blocks (hwp_mm4x1 under hwp_fc_dense_s8, hwp_mm2x2 under
hwp_conv_dense_s8, templates/c/hwprune_int8_dsp.h) on awkward shapes: a chain of fully
connected layers whose widths run through 1..9 rows and 1..17 inputs, then inputs long
enough for the assembly loops (95 to 260 inputs: one pass of 32 groups of four run straight,
several passes looped, every remainder block of 16, 8, 4, 2 and 1 groups, and k % 4 tails),
each for layers that widen their input once and for narrowing layers that read it as int8
(``widens_input``); and a chain of 3x3 convolutions whose kh * kw * cin (9..171) covers the
2x2 block's passes of sixteen groups (one, straight, and several, looped), its remainder
blocks and tails, with odd channel counts; and a chain of 1x1 convolutions with 1 to 17
groups of four inputs, 33, 65 and 96 (hwp_conv_pairs' written-out loop: straight up to 64, then
passes of 32 and the remainder, none or some),
half of them quantized as after a ReLU (zero point -128: the folded requantization without its
tie term), the last with an odd channel count. Every layer's output is compared as integers
with the reference, element by element, in the host C (the DSP instructions written in C,
and the scalar kernels) and on the Cortex-M4 in the emulator (the assembly)."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8_plan import stored_dense, widens_input
from hwprune.backends.c_int8_rq import HWP_RQ_FOLDED, HWP_RQ_FOLDED_TIE, rq_arrays
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, Int8Dense, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers
from tests.int8.conftest import differences, host_comparisons, run_on_mcu

IN_SCALE = 0.05
FC_WIDTHS = (17, 9, 1, 8, 2, 7, 3, 6, 4, 5, 13, 11, 16, 15, 12, 14, 10, 95, 96, 100, 9, 131, 140, 5, 200, 4, 260,
             270, 6)
CONV_CHANNELS = (1, 3, 5, 2, 7, 4, 16, 19, 8, 3)  # 3x3, pad 1: kh * kw * cin = 9 * cin
PW_CHANNELS = tuple(4 * g for g in range(1, 18)) + (132, 260, 384, 68, 5)  # 1x1: 1..17, 33, 65, 96 groups


def _types(rng, n, k):
    """Per-channel multipliers that keep outputs mostly inside int8 for k inputs of about +-70."""
    scales = rng.uniform(0.002, 0.01, size=n)
    out_t = Int8Affine(float(IN_SCALE * scales.mean() * 70 * 73 * np.sqrt(k) / 50), int(rng.integers(-20, 20)))
    mult, shift = conv_multipliers(IN_SCALE, scales, out_t.scale)
    return {**int8_types(out_t), "weight_scale": scales, "out_multiplier": mult, "out_shift": shift,
            "act_min": -128, "act_max": 127}, out_t


def fc_chain() -> Graph:
    rng = np.random.default_rng(126)
    layers, source, in_t = [], "x", Int8Affine(IN_SCALE, 5)
    for i, (n_in, n_out) in enumerate(zip(FC_WIDTHS, FC_WIDTHS[1:])):
        types, out_t = _types(rng, n_out, n_in)
        layers.append(Int8Dense(f"f{i}", weight=rng.integers(-127, 128, size=(n_out, n_in)),
                                bias=rng.integers(-3000, 3000, size=n_out), inputs=(source,), **types))
        source = f"f{i}"
    return Graph("fcchain", (GraphInput("x", (FC_WIDTHS[0],), in_t),), tuple(layers))


def conv_chain() -> Graph:
    rng = np.random.default_rng(127)
    layers, source = [], "x"
    for i, (cin, cout) in enumerate(zip(CONV_CHANNELS, CONV_CHANNELS[1:])):
        types, _ = _types(rng, cout, 9 * cin)
        layers.append(Int8Conv2D(f"c{i}", weight=rng.integers(-127, 128, size=(cout, 3, 3, cin)),
                                 bias=rng.integers(-3000, 3000, size=cout), stride=(1, 1), padding=((1, 1), (1, 1)),
                                 depthwise=False, inputs=(source,), **types))
        source = f"c{i}"
    return Graph("convchain", (GraphInput("x", (3, 5, CONV_CHANNELS[0]), Int8Affine(IN_SCALE, -3)),), tuple(layers))


def pointwise_chain() -> Graph:
    rng = np.random.default_rng(128)
    layers, source = [], "x"
    for i, (cin, cout) in enumerate(zip(PW_CHANNELS, PW_CHANNELS[1:])):
        types, out_t = _types(rng, cout, cin)
        if i % 2:  # a ReLU's quantization: the zero point at the clamp's floor
            types = {**types, **int8_types(Int8Affine(out_t.scale / 2, -128))}
            types["out_multiplier"], types["out_shift"] = conv_multipliers(IN_SCALE, types["weight_scale"],
                                                                           out_t.scale / 2)
        layers.append(Int8Conv2D(f"p{i}", weight=rng.integers(-127, 128, size=(cout, 1, 1, cin)),
                                 bias=rng.integers(-3000, 3000, size=cout), stride=(1, 1), padding=((0, 0), (0, 0)),
                                 depthwise=False, inputs=(source,), **types))
        source = f"p{i}"
    return Graph("pwchain", (GraphInput("x", (3, 5, PW_CHANNELS[0]), Int8Affine(IN_SCALE, 9)),), tuple(layers))


GRAPHS = (fc_chain(), conv_chain(), pointwise_chain())


def _inputs(graph, n):
    x = np.random.default_rng(4).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def test_chains_reach_every_block_and_store_dense():
    """Every layer runs the dense kernels, and the long rows reach the loops and each remainder."""
    for graph in GRAPHS:
        assert all(stored_dense(layer) for layer in graph.weighted_layers())
    for widened in (True, False):  # both ways of reading the input: widened once, or as int8 (narrowing layers)
        layers = [layer for layer in GRAPHS[0].layers if widens_input(layer) == widened]
        groups = {layer.filter_matrix.shape[1] // 4 for layer in layers}
        assert any(g >= 64 for g in groups) and any(32 <= g < 64 for g in groups)  # looped passes, one straight
        assert all(any(g % 32 & b for g in groups) for b in (16, 8, 4, 2, 1))
        assert {layer.filter_matrix.shape[1] % 4 for layer in layers} == {0, 1, 2, 3}
        assert {layer.out_features % 4 for layer in layers} == {0, 1, 2, 3}
    conv_groups = {9 * c // 4 for c in CONV_CHANNELS[:-1]}
    assert any(g >= 32 for g in conv_groups) and any(16 <= g < 32 for g in conv_groups)
    assert all(any(g % 16 & b for g in conv_groups) for b in (8, 4, 2, 1))
    pw = GRAPHS[2]
    assert sorted(layer.filter_matrix.shape[1] // 4 for layer in pw.layers) == sorted([*range(1, 18), 33, 65, 96, 17])
    forms = [rq_arrays(layer, pw.type_of(layer.inputs[0]))[1] for layer in pw.layers]
    assert set(forms[1::2]) == {HWP_RQ_FOLDED} and set(forms[::2]) == {HWP_RQ_FOLDED_TIE}
    # the outputs do not all saturate: the later layers see varied inputs
    for graph in GRAPHS:
        trace = reference.run(graph, _inputs(graph, 4), trace=True)
        for name, values in trace:  # (a ReLU's layer clamps about half its outputs to -128)
            assert np.mean((values > -128) & (values < 127)) > (0.3 if graph is pw else 0.5), name


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_host_c_equals_reference_on_every_layer(tmp_path, graph):
    x = _inputs(graph, 6)
    for result in host_comparisons(graph, x, tmp_path):
        assert result.bit_exact, result.report()


@pytest.mark.parametrize("cc", ["clang", "gcc"])
@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_cortex_m4_assembly_equals_reference(tmp_path, graph, cc):
    x = _inputs(graph, 2)
    run = run_on_mcu(graph, x, tmp_path, cc=cc)
    want = reference.run(graph, x)
    assert np.array_equal(run.outputs, want), differences(graph.name, run.outputs, want)
