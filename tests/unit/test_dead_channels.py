"""Dead-channel removal (prune.dead_channels): the graph without its dead channels computes, as
integers, what the original computes, in both dialects; a constant the padding would change,
or an accumulator whose sum depends on its order, keeps its channel."""

import numpy as np
import pytest

from dead_channel_graphs import fixed_cnn, fixed_inputs, int8_cnn, int8_conv, int8_inputs
from hwprune import reference
from hwprune.ir import Add, Conv2D, Dense, Graph, GraphInput, ReLU
from hwprune.prune.dead_channels import remove_dead_channels
from hwprune.ir.int8 import Int8Add
from hwprune.ir.fixed import Fixed, Overflow, Rounding, to_real
from hwprune.ir.int8_types import Int8Affine, add_params


def assert_same(original: Graph, reduced: Graph, x: np.ndarray) -> None:
    want, got = reference.run(original, x), reference.run(reduced, x)
    bad = np.argwhere(want != got)
    assert not len(bad), f"{len(bad)} outputs differ, first {[(tuple(i), want[tuple(i)], got[tuple(i)]) for i in bad[:3]]}"


def kept_channels(graph: Graph, layer: str) -> int:
    return graph.shape_of(layer)[-1]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", ["fixed_exact", "fixed_any_accumulator", "int8"])
def test_removal_is_exact_on_random_graphs(seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "int8":
        graph = int8_cnn(rng)
        x = int8_inputs(graph, rng)
    else:
        graph = fixed_cnn(rng, exact=kind == "fixed_exact")
        x = fixed_inputs(graph, rng)
    reduced, report = remove_dead_channels(graph)
    assert_same(graph, reduced, x)
    assert [layer.name for layer in reduced.layers] == [layer.name for layer in graph.layers]
    assert report.macs_after == reduced.macs <= graph.macs == report.macs_before
    if report.filters_removed:
        assert report.macs_after < report.macs_before
    again, second = remove_dead_channels(reduced)  # nothing is left to remove
    assert second.filters_removed == 0 and again.macs == reduced.macs


def test_random_graphs_do_lose_channels():
    """The generators above make channels that go (and some that stay): the test is not vacuous."""
    removed = kept = 0
    for seed in range(12):
        for graph in (fixed_cnn(np.random.default_rng(seed)), int8_cnn(np.random.default_rng(seed))):
            _, report = remove_dead_channels(graph)
            removed += report.filters_removed
            kept += len(report.kept)
    assert removed > 50 and kept > 5


# -- the int8 dialect: a constant against the padding ------------------------------------------

IN_T, MID_T, OUT_T = Int8Affine(0.05, -3), Int8Affine(0.1, -128), Int8Affine(0.08, 10)


def _pair(bias0: int, padding) -> Graph:
    """a (1x1, 3 filters; filter 0 all zero with bias ``bias0``, ReLU) -> b (3x3 conv reading
    all 3 channels with ``padding``)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(3, 1, 1, 2))
    w[0] = 0
    a = int8_conv(rng, "a", "x", (3, 1, 1, 2), IN_T, MID_T, weight=w)
    a = a.with_(bias=np.array([bias0, 100.0, -50.0]))
    wb = rng.integers(1, 128, size=(2, 3, 3, 3))  # every tap of channel 0 nonzero
    b = int8_conv(rng, "b", "a", (2, 3, 3, 3), MID_T, OUT_T, weight=wb, activation="none", padding=padding)
    return Graph("pair", (GraphInput("x", (5, 5, 2), IN_T),), (a, b))


def test_int8_constant_other_than_the_zero_point_is_kept_where_padding_reads_it():
    graph = _pair(20000, ((1, 1), (1, 1)))
    x = int8_inputs(graph, np.random.default_rng(1))
    constant = reference.run(graph, x, trace=True)[0][1][..., 0]
    assert np.all(constant == constant.flat[0]) and constant.flat[0] != MID_T.zero_point
    reduced, report = remove_dead_channels(graph)
    assert kept_channels(reduced, "a") == 3 and report.filters_removed == 0
    assert [(r, t, c) for r, t, c, _ in report.kept] == [("b", "a", 0)]
    assert "padding" in report.kept[0][3]
    assert np.array_equal(reduced.layer("b").weight, graph.layer("b").weight)
    assert_same(graph, reduced, x)


def test_int8_constant_goes_without_padding_or_when_it_is_the_zero_point():
    x = int8_inputs(_pair(0, None), np.random.default_rng(1))
    for graph in (_pair(20000, None), _pair(-20000, ((1, 1), (1, 1)))):  # folded into b's bias; equal to pad
        reduced, report = remove_dead_channels(graph)
        assert kept_channels(reduced, "a") == 2 and report.removed == {"a": (0,)} and not report.kept
        assert report.folded == {"b": 1}
        assert_same(graph, reduced, x)
    assert not np.array_equal(_pair(20000, None).layer("b").bias, remove_dead_channels(_pair(20000, None))[0]
                              .layer("b").bias)


def test_int8_add_and_graph_outputs_keep_their_channels():
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, size=(2, 1, 1, 2))
    w[1] = 0
    a = int8_conv(rng, "a", "x", (2, 1, 1, 2), IN_T, MID_T, weight=w)
    add = Int8Add.from_params("s", add_params(IN_T, MID_T, OUT_T), OUT_T, inputs=("x", "a"))
    graph = Graph("res", (GraphInput("x", (4, 4, 2), IN_T),), (a, add))
    reduced, report = remove_dead_channels(graph)
    assert report.filters_removed == 0 and kept_channels(reduced, "a") == 2
    alone = Graph("alone", (GraphInput("x", (4, 4, 2), IN_T),), (a,))
    assert remove_dead_channels(alone)[1].filters_removed == 0  # a graph output keeps every channel


# -- ap_fixed ----------------------------------------------------------------------------------

T8 = Fixed(8, 3)


def _fixed_pair(bias0: float, padding, accum_t: Fixed) -> Graph:
    """c (3 filters, filter 0 all zero) -> relu -> conv d reading all 3 channels."""
    rng = np.random.default_rng(2)
    w = to_real(rng.integers(-100, 100, size=(3, 1, 1, 2)), T8)
    w[0] = 0
    c = Conv2D("c", w, np.array([bias0, 0.5, -0.25]), T8, T8, Fixed(24, 10), T8)
    relu = ReLU("r", Fixed(8, 3, False))
    wd = to_real(rng.integers(1, 100, size=(2, 3, 3, 3)), T8)
    d = Conv2D("d", wd, np.array([0.25, -1.0]), T8, T8, accum_t, Fixed(12, 6), padding=padding)
    return Graph.chain("fixed_pair", (5, 5, 2), (c, relu, d), T8)


def test_fixed_constant_is_kept_where_padding_reads_it_and_goes_elsewhere():
    wide = Fixed(30, 14)
    x = fixed_inputs(_fixed_pair(1.5, None, wide), np.random.default_rng(0))
    kept_graph = _fixed_pair(1.5, ((1, 1), (1, 1)), wide)  # relu(1.5) = 1.5, the padding is 0
    reduced, report = remove_dead_channels(kept_graph)
    assert kept_channels(reduced, "c") == 3 and [k[:3] for k in report.kept] == [("d", "r", 0)]
    assert_same(kept_graph, reduced, x)
    for graph in (_fixed_pair(1.5, None, wide), _fixed_pair(-2.0, ((1, 1), (1, 1)), wide)):  # folded; relu gives 0
        reduced, report = remove_dead_channels(graph)
        assert report.removed == {"c": (0,), "r": (0,)} and not report.kept
        assert_same(graph, reduced, x)


def test_fixed_constant_into_an_order_dependent_accumulator_is_kept():
    """A narrow saturating accumulator: adding the constant first is not adding it in turn."""
    narrow = Fixed(10, 5, True, Rounding.TRN, Overflow.SAT)
    graph = _fixed_pair(1.5, None, narrow)
    x = fixed_inputs(graph, np.random.default_rng(0))
    reduced, report = remove_dead_channels(graph)
    assert kept_channels(reduced, "c") == 3 and "order" in report.kept[0][3]
    assert_same(graph, reduced, x)
    zero = _fixed_pair(-2.0, None, narrow)  # a constant 0 adds nothing in any order
    reduced, report = remove_dead_channels(zero)
    assert kept_channels(reduced, "c") == 2
    assert_same(zero, reduced, x)


def test_fixed_bias_type_widens_when_the_folded_bias_needs_it():
    """A dead unit's large constant folded into a bias whose type cannot hold the sum."""
    t_in, t_w = Fixed(8, 4), Fixed(8, 1)
    fc1 = Dense("fc1", np.array([[0.0, 0.0], [0.5, -0.25]]), np.array([7.5, 0.0]), t_w, Fixed(8, 4), Fixed(24, 12),
                Fixed(8, 4, False))
    w2 = to_real(np.array([[127, 3], [-128, 5]]), t_w)
    fc2 = Dense("fc2", w2, np.array([0.5, -0.5]), t_w, Fixed(4, 2), Fixed(24, 12), Fixed(16, 8))
    graph = Graph.chain("mlp", (2,), (fc1, ReLU("r", Fixed(8, 4, False)), fc2), t_in)
    reduced, report = remove_dead_channels(graph)
    assert report.removed == {"fc1": (0,), "r": (0,)}
    assert reduced.layer("fc2").bias_t.width > 4
    assert_same(graph, reduced, fixed_inputs(graph, np.random.default_rng(0)))


def test_unread_filters_and_a_last_channel():
    """A filter nothing reads goes whatever its weights; a tensor keeps one channel."""
    rng = np.random.default_rng(4)
    w = to_real(rng.integers(-100, 100, size=(3, 2)), T8)
    fc1 = Dense("fc1", w, np.zeros(3), T8, T8, Fixed(24, 10), T8)
    w2 = to_real(rng.integers(-100, 100, size=(2, 3)), T8)
    w2[:, 1] = 0  # nobody reads fc1's unit 1
    fc2 = Dense("fc2", w2, np.zeros(2), T8, T8, Fixed(24, 10), T8)
    graph = Graph.chain("mlp", (2,), (fc1, fc2), T8)
    reduced, report = remove_dead_channels(graph)
    assert report.removed == {"fc1": (1,)}
    dead = Graph.chain("mlp", (2,), (fc1.with_(weight=np.zeros((3, 2))), fc2), T8)
    reduced_dead, _ = remove_dead_channels(dead)
    assert kept_channels(reduced_dead, "fc1") == 1
    for g, r in ((graph, reduced), (dead, reduced_dead)):
        assert_same(g, r, fixed_inputs(g, rng))


def test_fixed_add_keeps_the_channel_and_float_graphs_pass_through():
    rng = np.random.default_rng(5)
    w = to_real(rng.integers(-100, 100, size=(2, 1, 1, 2)), T8)
    w[0] = 0
    c = Conv2D("c", w, np.array([1.0, 0.5]), T8, T8, Fixed(24, 10), T8, inputs=("x",))
    add = Add("s", result_t=Fixed(10, 5), inputs=("x", "c"))
    graph = Graph("res", (GraphInput("x", (3, 3, 2), T8),), (c, add))
    assert remove_dead_channels(graph)[1].filters_removed == 0
    float_graph = Graph.chain("f", (2,), (Dense("a", np.zeros((2, 2)), np.ones(2)), Dense("b", np.ones((1, 2)))))
    assert remove_dead_channels(float_graph)[0] is float_graph


def test_a_per_channel_batchnorm_keeps_its_channels():
    """BatchNorm scales each channel its own way: its channels stay (dead or not)."""
    from hwprune.ir import BatchNorm

    rng = np.random.default_rng(6)
    w = to_real(rng.integers(-100, 100, size=(3, 1, 1, 2)), T8)
    w[1] = 0
    c = Conv2D("c", w, np.array([0.5, 1.0, -0.25]), T8, T8, Fixed(24, 10), T8)
    bn = BatchNorm("bn", scale=np.array([0.5, -1.0, 2.0]), bias=np.array([0.25, 0.0, -0.5]), scale_t=T8, bias_t=T8,
                   result_t=Fixed(12, 6))
    d = Conv2D("d", to_real(rng.integers(-100, 100, size=(2, 1, 1, 3)), T8), np.zeros(2), T8, T8, Fixed(30, 14),
               Fixed(12, 6))
    graph = Graph.chain("bn_chain", (3, 3, 2), (c, bn, d), T8)
    reduced, report = remove_dead_channels(graph)
    assert report.filters_removed == 0 and kept_channels(reduced, "bn") == 3
    assert_same(graph, reduced, fixed_inputs(graph, rng))
