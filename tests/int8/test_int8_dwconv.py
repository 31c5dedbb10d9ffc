"""The 3x3 depthwise kernel ``hwp_dw3_s8`` (templates/c/hwprune_int8_dw.h) on awkward shapes:
1..9 channels (blocks of four and the rest), stride 1 and 2, same, valid and one-sided
padding, odd and even widths, a narrow image that runs transposed, the tie term of the
requantization on and off (output zero point above or at the activation minimum), a
narrower activation range (the loops in C), zero weights; a 5x5 layer and a layer whose
bias defeats the exactness bound keep the other kernel. Each graph runs in the reference,
in the host C with the DSP instructions written in C and in its scalar build, and a few on
the Cortex-M4 in the emulator; every layer's output is compared as integers."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.backends.c_int8_dw import depthwise_plan
from hwprune.harness.host_int8 import run_host
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers
from tests.int8.conftest import PORTABLE, differences, run_on_mcu

IN_SCALE = 0.05


def _dw(rng, name, source, c, k, stride, pad, out_zp, act=(-128, 127), big_bias=False, multiplier=1):
    out_t = Int8Affine(0.1, out_zp)
    c *= multiplier
    w = rng.integers(-127, 128, size=(c, k, k, 1))
    w[rng.random(w.shape) < 0.1] = 0
    scales = rng.uniform(0.001, 0.01, size=c)
    mult, shift = conv_multipliers(IN_SCALE, scales, out_t.scale)
    bias = rng.integers(-3000, 3000, size=c)
    if big_bias:  # 2 |bias| no longer fits int32 (the sum itself still does)
        bias = rng.choice([-1, 1], size=c) * (2 ** 30 + rng.integers(0, 1000, size=c))
    return Int8Conv2D(name, weight=w, bias=bias, stride=(stride, stride),
                      padding=pad, depthwise=True, inputs=(source,), **int8_types(out_t), weight_scale=scales,
                      out_multiplier=mult, out_shift=shift, act_min=act[0], act_max=act[1])


def _wide(c):
    """13x15 -> same, stride 1 (no tie term) -> stride 2, pad (0, 1) -> valid, ReLU-like range (C loops) ->
    stride 2, same, 2x3 outputs (the other kernel) -> 5x5 (the other kernel)."""
    rng = np.random.default_rng(100 + c)
    layers = (
        _dw(rng, "d0", "x", c, 3, 1, ((1, 1), (1, 1)), -128),
        _dw(rng, "d1", "d0", c, 3, 2, ((0, 1), (0, 1)), 5),
        _dw(rng, "d2", "d1", c, 3, 1, ((0, 0), (0, 0)), -20, act=(-20, 60)),
        _dw(rng, "d3", "d2", c, 3, 2, ((1, 1), (1, 1)), -3),
        _dw(rng, "d4", "d3", c, 5, 1, ((2, 2), (2, 2)), 0),
    )
    return Graph(f"dwwide{c}", (GraphInput("x", (13, 15, c), Int8Affine(IN_SCALE, int(rng.integers(-9, 9)))),), layers)


def _narrow(c):
    """13x3 (runs transposed) -> stride 2, pad (1, 2) -> a bias beyond the exactness bound (the other kernel) ->
    eight filters per channel (the scalar kernel; its large output leaves the arena room for the first ring)."""
    rng = np.random.default_rng(200 + c)
    layers = (
        _dw(rng, "n0", "x", c, 3, 1, ((1, 1), (1, 1)), 7),
        _dw(rng, "n1", "n0", c, 3, 2, ((1, 2), (1, 2)), -128),
        _dw(rng, "n2", "n1", c, 3, 1, ((1, 1), (1, 1)), 1, big_bias=True),
        _dw(rng, "n3", "n2", c, 3, 1, ((1, 1), (1, 1)), 0, multiplier=32),
    )
    return Graph(f"dwnarrow{c}", (GraphInput("x", (13, 3, c), Int8Affine(IN_SCALE, -128)),), layers)


GRAPHS = [_wide(c) for c in range(1, 10)] + [_narrow(c) for c in (3, 4, 8)]


def _inputs(graph, n):
    x = np.random.default_rng(7).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def _plans(graph):
    return [depthwise_plan(layer, graph.input_types(layer)[0], graph.input_shapes(layer)[0],
                           graph.shape_of(layer.name)) for layer in graph.layers]


def test_the_kernel_takes_every_3x3_layer_in_bounds_and_narrow_images_run_transposed():
    wide, narrow = _plans(GRAPHS[4]), _plans(GRAPHS[-1])
    assert [p is not None for p in wide] == [True, True, True, False, False]  # d3 has 2x3 outputs
    assert [p.neg for p in wide[:3]] == [False, True, False]
    assert [p is not None for p in narrow] == [True, True, False, False]
    assert narrow[0].transposed and not wide[0].transposed


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_host_c_equals_reference_on_every_layer(tmp_path, graph):
    x = _inputs(graph, 6)
    write_int8_c(graph, tmp_path / "c")
    source = (tmp_path / "c" / "model_int8.c").read_text()
    assert source.count("hwp_dw3_s8(") == sum(p is not None for p in _plans(graph))
    expected = dict(reference.run(graph, x, trace=True))
    for defines in (PORTABLE, ()):
        for name, got in run_host(graph, tmp_path / "c", x, tmp_path, defines):
            want = expected[name]
            assert np.array_equal(got, want), differences(f"host {defines} {name}", got, want)


@pytest.mark.parametrize("graph", [GRAPHS[3], GRAPHS[4], GRAPHS[-1]], ids=lambda g: g.name)
def test_cortex_m4_equals_reference(tmp_path, graph):
    x = _inputs(graph, 3)
    run = run_on_mcu(graph, x, tmp_path)
    want = reference.run(graph, x)
    assert np.array_equal(run.outputs, want), differences(graph.name, run.outputs, want)
