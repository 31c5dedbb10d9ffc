"""A dense convolution's first channels four at a time (templates/c/hwprune_int8_quads.h):
records of four channels (``conv_records``, ``quad_rows``) read by the written-out loop on DSP
cores and by hwp_quads_c / hwp_row_w elsewhere. Layers with 4..17 output channels (every
remainder of four: the quads then a pair and an odd channel), 1x1 and 3x3 (im2col) filters of
1 to 25 groups of four weights (the loop's passes of four groups and the groups after them;
two quads a pass up to 8 groups, an odd number of quads entering at the second),
the folded requantization with and without its tie term, an odd last pixel, weights stored
as int8 and widened to int16 (HWP_QUAD_WIDE): each layer's output from the host C (DSP
instructions written in C, and the scalar kernels) and from the Cortex-M4 (clang and gcc at
-O2, the C loops at -O0) and a Cortex-M0+ equals the reference's, element by element; and the
export chooses the widened weights only where they fit the model's own weight bytes."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8_layout import QUAD_MIN_CHANNELS, conv_quads, conv_records, quad_rows, quad_rows_wide
from hwprune.backends.c_int8_plan import wide_weights
from hwprune.backends.c_int8_rq import rq_arrays
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers
from tests.int8.conftest import differences, host_comparisons, run_on_mcu


def _sxtb16(word: np.ndarray) -> tuple:
    """SXTB16 of four bytes and of them rotated by 8: (b0, b2) and (b1, b3)"""
    return (int(word[0]), int(word[2])), (int(word[1]), int(word[3]))


def test_quad_rows_give_each_channel_pair_the_columns_word_order():
    k = 12
    m = np.random.default_rng(0).integers(-127, 128, size=(4, k))
    words = quad_rows(m).reshape(-1, 4)
    assert words.shape == (4 * k // 4, 4)
    for g in range(k // 4):
        for w, (lo, hi), (a, b) in zip(words[4 * g:4 * g + 4], ((0, 2), (0, 2), (1, 3), (1, 3)),
                                       ((0, 1), (2, 3), (0, 1), (2, 3))):
            first, second = _sxtb16(w)
            assert first == (m[a, 4 * g + lo], m[a, 4 * g + hi])
            assert second == (m[b, 4 * g + lo], m[b, 4 * g + hi])


@pytest.mark.parametrize("n, k, folded", [(12, 8, True), (13, 64, True), (15, 16, True), (16, 4, True), (3, 8, True),
                                          (5, 68, True), (30, 4, True), (13, 8, False)])
def test_conv_records_put_the_quads_first_then_pairs_and_the_odd_channel(n, k, folded):
    quads = conv_quads(n, folded)
    assert quads == (n // 4 if folded and n >= QUAD_MIN_CHANNELS else 0)
    m = np.random.default_rng(n).integers(-127, 128, size=(n, k))
    records = conv_records(m, np.arange(n) + 1000, np.arange(n) + 2 ** 30, np.arange(n) + 7, folded)
    rest = n - 4 * quads
    assert records.size == quads * (48 + 4 * k) + rest // 2 * (24 + 2 * k) + rest % 2 * (12 + k)
    if quads:
        first = records[:48 + 4 * k]
        assert first[:16].view("<i4").tolist() == [1000, 1001, 1002, 1003]
        assert first[16:16 + 4 * k].tolist() == quad_rows(m[:4]).tolist()
        assert first[16 + 4 * k:].view("<i4").tolist() == [2 ** 30, 7, 2 ** 30 + 1, 8, 2 ** 30 + 2, 9, 2 ** 30 + 3, 10]


def _graph(index, cin, cout, kernel, pad, hw, out_zp):
    rng = np.random.default_rng(300 + index)
    w = rng.integers(-127, 128, size=(cout, *kernel, cin))
    w[min(5, cout - 1)] = 0  # a filter of zeros
    out_t = Int8Affine(0.1, out_zp)
    scales = rng.uniform(0.001, 0.01, size=cout)
    mult, shift = conv_multipliers(0.05, scales, out_t.scale)
    layer = Int8Conv2D("c", weight=w, bias=rng.integers(-3000, 3000, size=cout), stride=(1, 1), padding=pad,
                       inputs=("x",), **int8_types(out_t), weight_scale=scales, out_multiplier=mult, out_shift=shift,
                       act_min=-128, act_max=127)
    x_t = Int8Affine(0.05, int(rng.integers(-9, 9)))
    return Graph(f"quads{index}", (GraphInput("x", (*hw, cin), x_t),), (layer,))


# (input channels, output channels, kernel, padding, input h x w, output zero point)
SHAPES = (
    (4, 12, (1, 1), ((0, 0), (0, 0)), (3, 3), -128),
    (8, 13, (1, 1), ((0, 0), (0, 0)), (2, 5), 3),
    (64, 14, (1, 1), ((0, 0), (0, 0)), (1, 3), -128),
    (36, 15, (1, 1), ((0, 0), (0, 0)), (3, 2), -7),
    (100, 4, (1, 1), ((0, 0), (0, 0)), (2, 2), -128),
    (4, 17, (3, 3), ((1, 1), (1, 1)), (4, 3), -128),
    (3, 6, (3, 3), ((1, 1), (1, 1)), (3, 5), 11),
    (8, 16, (1, 1), ((0, 0), (0, 0)), (3, 3), 5),
)
GRAPHS = [_graph(i, *shape) for i, shape in enumerate(SHAPES)]


def _inputs(graph, n):
    x = np.random.default_rng(9).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def test_the_graphs_take_quads_with_and_without_the_tie_term():
    ties = set()
    for graph in GRAPHS:
        (layer,) = graph.layers
        out_zp = rq_arrays(layer, graph.input_types(layer)[0])[1]
        assert conv_quads(layer.out_channels, out_zp >= 256) >= 1
        ties.add(out_zp)
    assert len(ties) == 2  # HWP_RQ_FOLDED and HWP_RQ_FOLDED_TIE


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.name)
def test_host_c_simd_and_scalar_equal_reference(tmp_path, graph, wide):
    x = _inputs(graph, 6)
    for result in host_comparisons(graph, x, tmp_path, wide):
        assert result.bit_exact, result.report()


@pytest.mark.parametrize("cc, opt, wide, target, fp", [
    (None, "-O2", False, "stm32l4r5", False), ("gcc", "-O2", False, "stm32l4r5", False),
    (None, "-O0", False, "stm32l4r5", False), (None, "-O2", True, "stm32l4r5", False),
    ("gcc", "-O2", True, "stm32l4r5", False), (None, "-O0", True, "stm32l4r5", False),
    (None, "-O2", True, "mspm0g3507", False),
    # a frame pointer kept in r7: the quads' loop names r7 too, saved on the stack meanwhile
    (None, "-O2", False, "stm32l4r5", True), ("gcc", "-O2", True, "stm32l4r5", True)])
def test_firmware_equals_reference(tmp_path, cc, opt, wide, target, fp):
    for graph in GRAPHS:
        x = _inputs(graph, 2)
        run = run_on_mcu(graph, x, tmp_path / graph.name, target=target, cc=cc, opt=opt, wide=wide, frame_pointer=fp)
        want = reference.run(graph, x)
        assert np.array_equal(run.outputs, want), differences(f"{graph.name} {cc} {opt} {wide} {target} {fp}",
                                                              run.outputs, want)


def test_wide_rows_hold_each_channels_int16_pairs_in_step_order():
    m = np.random.default_rng(1).integers(-127, 128, size=(4, 8))
    pairs = quad_rows_wide(m).view("<i2").reshape(-1, 2)
    assert pairs.shape == (16, 2)
    for g in range(2):
        for step, (lo, hi) in enumerate(((0, 2), (1, 3))):
            for j in range(4):
                assert pairs[8 * g + 4 * step + j].tolist() == [m[j, 4 * g + lo], m[j, 4 * g + hi]]
    records = conv_records(m, np.zeros(4), np.full(4, 2 ** 30), np.zeros(4), True, wide=True)
    assert records.size == 48 + 8 * 8


def test_weights_widen_only_within_the_models_own_bytes():
    from types import SimpleNamespace

    graph = GRAPHS[0]
    weights = int(graph.layers[0].weight.size)

    def model(n):  # what wide_weights reads of the model: its weighted layers' weights
        return SimpleNamespace(weighted_layers=lambda: [SimpleNamespace(weight=np.zeros(n, dtype=np.int8))])

    assert wide_weights(graph, model(2 * weights)) and not wide_weights(graph, model(2 * weights - 1))


def test_the_rule_is_the_headers():
    """conv_quads decides the records' layout at export, HWP_CONV_QUADS how the C reads them"""
    import re

    from hwprune.paths import templates_dir

    text = (templates_dir() / "c" / "hwprune_int8_quads.h").read_text()
    assert int(re.search(r"#define HWP_QUAD_MIN_CHANNELS (\d+)", text).group(1)) == QUAD_MIN_CHANNELS
