"""The integer conv and pooling kernels against a rational oracle written from the IR's
definition (loops over positions and taps; no code shared with hwprune.windows)."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from hwprune import reference
from hwprune.ir import AvgPool1D, AvgPool2D, Conv1D, Conv2D, GlobalAvgPool1D, GlobalAvgPool2D, Graph, MaxPool1D, \
    MaxPool2D
from hwprune.ir.fixed import Fixed, Overflow, Rounding, from_grid, quantize, to_real

import oracle
from oracle import cast_value, value
from test_reference import CASES


def source_index(pos, tap, layer, spatial):
    """The input position a window tap reads, or None on padding."""
    src = tuple(p * s - pad[0] + t for p, s, pad, t in zip(pos, layer.stride, layer.padding, tap))
    return src if all(0 <= i < n for i, n in zip(src, spatial)) else None


def oracle_conv(x, in_t, layer, out_shape):
    w = from_grid(layer.weight, layer.weight_t)
    b = from_grid(layer.bias, layer.bias_t)
    y = np.zeros(out_shape, dtype=np.int64)
    m = layer.out_channels // x.shape[-1] if layer.depthwise else 1
    for pos in itertools.product(*(range(n) for n in out_shape[:-1])):
        for o in range(layer.out_channels):
            acc = cast_value(value(b[o], layer.bias_t), layer.accum_t)
            for tap in itertools.product(*(range(k) for k in layer.kernel_size)):
                src = source_index(pos, tap, layer, x.shape[:-1])
                for c in range(layer.in_channels_per_group):
                    if src is None:
                        continue
                    xi = x[(*src, o // m if layer.depthwise else c)]
                    product = cast_value(value(xi, in_t) * value(w[(o, *tap, c)], layer.weight_t), layer.accum_t)
                    acc = cast_value(value(acc, layer.accum_t) + value(product, layer.accum_t), layer.accum_t)
            y[(*pos, o)] = cast_value(value(acc, layer.accum_t), layer.result_t)
    return y


def oracle_pool(x, in_t, layer, out_shape):
    if len(out_shape) == 1:  # global pooling: one window over everything
        return oracle_pool(x, in_t, layer, (1,) * (x.ndim - 1) + out_shape).reshape(out_shape)
    y = np.zeros(out_shape, dtype=np.int64)
    window = getattr(layer, "pool_size", x.shape[:-1])
    stride = getattr(layer, "stride", window)
    padding = getattr(layer, "padding", ((0, 0),) * len(window))
    geometry = type("G", (), {"stride": stride, "padding": padding})
    for pos in itertools.product(*(range(n) for n in out_shape[:-1])):
        for c in range(x.shape[-1]):
            cells = [source_index(pos, tap, geometry, x.shape[:-1])
                     for tap in itertools.product(*(range(k) for k in window))]
            values = [x[(*src, c)] for src in cells if src is not None]
            if layer.op == "max":
                acc = cast_value(value(max(values), in_t), layer.accum_t)
            else:
                acc = 0
                for v in values:
                    acc = cast_value(value(acc, layer.accum_t) + value(v, in_t), layer.accum_t)
                count = int(np.prod(window)) if getattr(layer, "count_pad", False) else len(values)
                acc = int(Fraction(acc, count))  # int() of a Fraction truncates toward zero
            y[(*pos, c)] = cast_value(value(acc, layer.accum_t), layer.result_t)
    return y


def quantized_conv(rng, cls, w_shape, types, **geometry):
    weight_t, bias_t, accum_t, result_t = types
    w = to_real(quantize(rng.normal(0, 0.7, w_shape) * (rng.random(w_shape) < 0.7), weight_t), weight_t)
    b = to_real(quantize(rng.normal(0, 0.5, w_shape[0]), bias_t), bias_t)
    return cls("conv", w, b, weight_t=weight_t, bias_t=bias_t, accum_t=accum_t, result_t=result_t, **geometry)


CONVS = [
    (Conv1D, (3, 3, 2), (7, 2), dict(stride=(2,), padding=((1, 2),))),
    (Conv1D, (4, 2, 1), (6, 2), dict(stride=(1,), padding=((1, 0),), depthwise=True)),
    (Conv2D, (3, 3, 2, 2), (5, 4, 2), dict(stride=(1, 2), padding=((1, 1), (0, 1)))),
    (Conv2D, (2, 2, 3, 1), (4, 5, 2), dict(stride=(2, 1), padding=((0, 1), (2, 0)), depthwise=True)),
]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("conv", range(len(CONVS)))
def test_conv_matches_oracle(rng, case, conv):
    cls, w_shape, in_shape, geometry = CONVS[conv]
    in_t = Fixed(7, 2, conv % 2 == 0, Rounding.RND, Overflow.SAT)
    layer = quantized_conv(rng, cls, w_shape, CASES[case], **geometry)
    graph = Graph.chain("g", in_shape, (layer,), in_t)
    x = rng.integers(in_t.min_int, in_t.max_int, (4, *in_shape), endpoint=True)
    got = reference.run(graph, x)
    want = np.stack([oracle_conv(row, in_t, layer, graph.output_shape) for row in x])
    assert np.array_equal(got, want), np.argwhere(got != want)[:5]


POOL_TYPES = {
    "exact": (Fixed(14, 6, True, Rounding.TRN, Overflow.WRAP), Fixed(7, 2, True, Rounding.RND, Overflow.SAT)),
    # a narrow saturating accumulator with fewer fraction bits than the input: every add rounds
    "narrow": (Fixed(6, 3, True, Rounding.RND, Overflow.SAT), Fixed(5, 2, False, Rounding.TRN, Overflow.WRAP)),
}
POOLS = [
    (MaxPool1D, dict(pool_size=(3,), stride=(2,), padding=((1, 2),)), (8, 2)),
    (MaxPool2D, dict(pool_size=(2, 3), stride=(1, 2), padding=((1, 0), (1, 1))), (4, 5, 2)),
    (AvgPool1D, dict(pool_size=(3,), stride=(1,), padding=((2, 1),)), (6, 2)),
    (AvgPool1D, dict(pool_size=(3,), stride=(2,), padding=((1, 1),), count_pad=True), (6, 2)),
    (AvgPool2D, dict(pool_size=(3, 2), stride=(2, 1), padding=((1, 1), (0, 1))), (5, 4, 2)),
    (AvgPool2D, dict(pool_size=(2, 2), padding=((1, 0), (1, 1)), count_pad=True), (5, 4, 2)),
    (GlobalAvgPool1D, {}, (7, 3)),
    (GlobalAvgPool2D, {}, (3, 4, 2)),
]


@pytest.mark.parametrize("types", sorted(POOL_TYPES))
@pytest.mark.parametrize("pool", range(len(POOLS)))
def test_pooling_matches_oracle(rng, types, pool):
    cls, geometry, in_shape = POOLS[pool]
    accum_t, result_t = POOL_TYPES[types]
    layer = cls("pool", accum_t=accum_t, result_t=result_t, **geometry)
    in_t = Fixed(7, 2, True, Rounding.RND, Overflow.SAT)
    graph = Graph.chain("g", in_shape, (layer,), in_t)
    x = rng.integers(in_t.min_int, in_t.max_int, (5, *in_shape), endpoint=True)
    got = reference.run(graph, x)
    want = np.stack([oracle_pool(row, in_t, layer, graph.output_shape) for row in x])
    assert np.array_equal(got, want), np.argwhere(got != want)[:5]


def test_average_truncates_toward_zero():
    """-5/3 LSB is -1 LSB (C division), not -2 (floor)."""
    t = Fixed(8, 4, True, Rounding.TRN, Overflow.WRAP)
    layer = GlobalAvgPool1D("g", accum_t=t, result_t=t)
    graph = Graph.chain("g", (3, 1), (layer,), t)
    assert reference.run(graph, np.array([[[-2], [-2], [-1]], [[2], [2], [1]]])).tolist() == [[-1], [1]]
    assert oracle.cast_value(Fraction(-5, 3) / 16, t) == -2  # what a floor (TRN) would give
