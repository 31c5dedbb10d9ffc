"""A 1x1 convolution run inside the 3x3 depthwise layer after it (``hwp_pwdw3_s8``,
templates/c/hwprune_int8_dw.h; ``backends.c_int8_plan.fused_producers``): its output rows go
straight into the depthwise layer's ring as int16, so the tensor is never stored and never
widened. Graphs with fused pairs at stride 1 and 2, in the image's order and transposed (a
narrow image), odd row widths (a last pixel on its own) and odd channel counts (the odd last
channel's loop), beside pairs that must not fuse (an output zero point other than -128, input
channels not in words). Each runs in the reference, the host C (DSP instructions in C, and
scalar: every layer's output, the fused convolution's recomputed for the trace), and on the
Cortex-M4 (both compilers, optimized and not) and a Cortex-M0+; all compared as integers."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8 import layer_kernels, write_int8_c
from hwprune.backends.c_int8_plan import arena_bytes, depthwise_rings, fusible_pairs, fused_producers, plan_int8
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.host_int8 import run_host
from hwprune.harness.mcu_int8 import trace_mcu
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers
from hwprune.prune.dead_channels import remove_dead_channels
from tests.int8.conftest import PORTABLE, differences, run_on_mcu

IN_SCALE = 0.05


def _conv(rng, name, source, k, c, out_zp=-128, depthwise=False, stride=1, pad=((0, 0), (0, 0))):
    out_t = Int8Affine(0.03, out_zp)  # outputs spread over most of int8, some at each end
    shape = (c, 3, 3, 1) if depthwise else (c, 1, 1, k)
    w = rng.integers(-127, 128, size=shape)
    w[rng.random(w.shape) < 0.1] = 0
    scales = rng.uniform(0.001, 0.01, size=c)
    mult, shift = conv_multipliers(IN_SCALE, scales, out_t.scale)
    return Int8Conv2D(name, weight=w, bias=rng.integers(-3000, 3000, size=c), stride=(stride, stride), padding=pad,
                      depthwise=depthwise, inputs=(source,), **int8_types(out_t), weight_scale=scales,
                      out_multiplier=mult, out_shift=shift, act_min=-128, act_max=127)


def _wide():
    """9x11x8 -> 1x1 to 12 -> dw stride 1, same (fused; no tie term: four outputs a pass) -> 1x1 to 7 ->
    dw stride 2, pad (0, 1), tie term (fused; odd channels) -> 1x1 7 to 4 (input channels not in words)
    -> dw (not fused) -> 1x1 to 4, output zero point 5 -> dw (not fused)."""
    rng = np.random.default_rng(11)
    same = ((1, 1), (1, 1))
    layers = (
        _conv(rng, "p0", "x", 8, 12), _conv(rng, "d0", "p0", 12, 12, depthwise=True, pad=same),
        _conv(rng, "p1", "d0", 12, 7), _conv(rng, "d1", "p1", 7, 7, 5, depthwise=True, stride=2, pad=((0, 1), (0, 1))),
        _conv(rng, "p2", "d1", 7, 4), _conv(rng, "d2", "p2", 4, 4, depthwise=True, pad=same),
        _conv(rng, "p3", "d2", 4, 4, 5), _conv(rng, "d3", "p3", 4, 4, depthwise=True, pad=same),
    )
    return Graph("pwdw_wide", (GraphInput("x", (9, 11, 8), Int8Affine(IN_SCALE, 3)),), layers)


def _narrow():
    """15x3x4 (the depthwise layers run transposed) -> 1x1 to 64, zero point 5 -> dw (neither fused: the
    arena's largest step, which leaves room for the rings after) -> 1x1 to 8 -> dw stride 1, same (fused)
    -> 1x1 to 9 -> dw stride 2, same (fused)."""
    rng = np.random.default_rng(12)
    same = ((1, 1), (1, 1))
    layers = (
        _conv(rng, "q", "x", 4, 64, 5), _conv(rng, "e", "q", 64, 64, depthwise=True, pad=same),
        _conv(rng, "p0", "e", 64, 8), _conv(rng, "d0", "p0", 8, 8, depthwise=True, pad=same),
        _conv(rng, "p1", "d0", 8, 9), _conv(rng, "d1", "p1", 9, 9, depthwise=True, stride=2, pad=same),
    )
    return Graph("pwdw_narrow", (GraphInput("x", (15, 3, 4), Int8Affine(IN_SCALE, -9)),), layers)


GRAPHS = [_wide(), _narrow()]


def _inputs(graph, n):
    x = np.random.default_rng(5).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def test_fused_pairs_run_one_kernel_and_keep_no_tensor():
    wide, narrow = GRAPHS
    assert {d: p.name for d, p in fused_producers(wide).items()} == {"d0": "p0", "d1": "p1"}
    assert layer_kernels(wide)[:4] == ["(hwp_pwdw3_s8)", "hwp_pwdw3_s8"] * 2
    assert layer_kernels(wide)[4:] == ["hwp_conv_k4_s8", "hwp_dw3_s8", "hwp_conv_dense_s8", "hwp_dw3_s8"]
    assert {d: p.name for d, p in fused_producers(narrow).items()} == {"d0": "p0", "d1": "p1"}
    assert all(plan.transposed for plan, _, _ in depthwise_rings(narrow).values())
    for graph in GRAPHS:
        assert not {"p0", "p1"} & set(plan_int8(graph).offsets)  # their outputs take no bytes


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_host_c_equals_reference_on_every_layer(tmp_path, graph):
    x = _inputs(graph, 5)
    write_int8_c(graph, tmp_path / "c")
    expected = dict(reference.run(graph, x, trace=True))
    for defines in (PORTABLE, ()):
        traced = run_host(graph, tmp_path / "c", x, tmp_path, defines)
        assert [name for name, _ in traced] == [layer.name for layer in graph.layers]
        for name, got in traced:
            assert np.array_equal(got, expected[name]), differences(f"host {defines} {name}", got, expected[name])


@pytest.mark.parametrize("target, cc, opt", [("stm32l4r5", None, "-O2"), ("stm32l4r5", "gcc", "-O2"),
                                             ("stm32l4r5", None, "-O0"), ("mspm0g3507", None, "-O2")])
@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_firmware_equals_reference(tmp_path, graph, target, cc, opt):
    """The written-out ring stores (M4, both compilers), the C loops (-O0), a core without the
    DSP extension (Cortex-M0+: the scalar row)."""
    x = _inputs(graph, 3)
    run = run_on_mcu(graph, x, tmp_path, target=target, cc=cc, opt=opt)
    want = reference.run(graph, x)
    assert np.array_equal(run.outputs, want), differences(f"{graph.name} {target} {cc} {opt}", run.outputs, want)


def test_traced_firmware_gives_every_layer(tmp_path):
    graph = GRAPHS[0]
    x = _inputs(graph, 2)
    run_on_mcu(graph, x, tmp_path)  # writes the C
    expected = dict(reference.run(graph, x, trace=True))
    traced = trace_mcu(graph, tmp_path / "c", x, tmp_path)
    assert [name for name, _ in traced] == [layer.name for layer in graph.layers]
    for name, got in traced:
        assert np.array_equal(got, expected[name]), differences(name, got, expected[name])


def test_mlperf_models_fuse_where_the_arena_allows(data_dir):
    """VWW (dead channels removed): six pairs fused and the arena a third smaller; KWS: none (a
    ring of all 64 channels of its 25-pixel rows outweighs the tensor it would replace)."""
    vww = remove_dead_channels(read_tflite(data_dir / "vww_96_int8.tflite", "vww").graph)[0]
    fused = fused_producers(vww)
    assert sorted(fused) == [f"depthwise_conv_2d_{i}" for i in (11, 13, 3, 5, 7, 9)]
    assert arena_bytes(vww, fused) < 0.75 * arena_bytes(vww, {})
    kws = read_tflite(data_dir / "kws_ref_model.tflite", "kws").graph
    assert fusible_pairs(kws) and not fused_producers(kws)
