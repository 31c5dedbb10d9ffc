"""Quantized graphs with dead channels, in both numeric dialects, for the dead-channel tests.

Every builder takes a seeded generator and returns a graph whose weighted layers have some
all-zero filters (their output a constant: the bias through the accumulator, the cast or
requantization and the clamp) and random biases, so constants land both on and off the
padding value; convolutions with and without padding, depthwise convs, pooling and a
flatten into a Dense read them.
"""

from __future__ import annotations

import numpy as np

from hwprune.ir import AvgPool2D, Conv2D, Dense, Flatten, Graph, GraphInput, MaxPool2D, ReLU, Reshape
from hwprune.ir.int8 import Int8AvgPool2D, Int8Conv2D, Int8Dense, int8_types
from hwprune.ir.fixed import Fixed, Overflow, Rounding, to_real
from hwprune.ir.int8_types import Int8Affine, activation_range, conv_multipliers

MODES = [(r, o) for r in Rounding for o in Overflow]


def _kill(rng, w: np.ndarray, share: float) -> np.ndarray:
    """``w`` with about ``share`` of its filters (axis 0) all zero, at least one."""
    w = w.copy()
    dead = rng.random(w.shape[0]) < share
    dead[int(rng.integers(w.shape[0]))] = True
    w[dead] = 0
    return w


# -- ap_fixed ----------------------------------------------------------------------------------

def _type(rng, width=(4, 12), signed=True) -> Fixed:
    w = int(rng.integers(width[0], width[1] + 1))
    rounding, overflow = MODES[int(rng.integers(4))]
    return Fixed(w, int(rng.integers(1, w)), signed, rounding, overflow)


def _accum(rng, in_t: Fixed, weight_t: Fixed, exact: bool) -> Fixed:
    """Wide and exact (every product kept, no overflow), or narrow with a random mode."""
    product_frac = in_t.frac_bits + weight_t.frac_bits
    if exact:
        width = min(in_t.width + weight_t.width + 10, 62)
        return Fixed(width, width - product_frac, True, Rounding.TRN, Overflow.WRAP)
    width = int(rng.integers(8, 24))
    frac = product_frac + int(rng.integers(-3, 3))
    rounding, overflow = MODES[int(rng.integers(4))]
    return Fixed(width, width - frac, True, rounding, overflow)


def _fixed_weighted(rng, cls, name, shape, in_t, exact, share, **geometry):
    weight_t, bias_t, result_t = _type(rng), _type(rng), _type(rng)
    accum_t = _accum(rng, in_t, weight_t, exact)
    w = to_real(_kill(rng, rng.integers(weight_t.min_int, weight_t.max_int + 1, size=shape), share), weight_t)
    b = to_real(rng.integers(bias_t.min_int, bias_t.max_int + 1, size=shape[0]), bias_t)
    return cls(name, w, b, weight_t, bias_t, accum_t, result_t, **geometry), result_t


def fixed_cnn(rng, exact: bool = True, share: float = 0.4) -> Graph:
    """conv 3x3 (padded) -> relu -> depthwise 3x3 (padded) -> relu -> conv 1x1 -> maxpool ->
    conv 3x3 (unpadded) -> relu -> avgpool -> flatten -> dense -> relu -> dense."""
    in_t = _type(rng, signed=bool(rng.random() < 0.7))
    layers, t = [], in_t
    pad = ((1, 1), (1, 1))

    def add(layer, out_t):
        nonlocal t
        layers.append(layer)
        t = out_t

    def relu(name):
        out_t = _type(rng, signed=False)
        add(ReLU(name, out_t), out_t)

    add(*_fixed_weighted(rng, Conv2D, "c1", (6, 3, 3, 2), t, exact, share, padding=pad))
    relu("r1")
    add(*_fixed_weighted(rng, Conv2D, "dw", (6, 3, 3, 1), t, exact, share, padding=pad, depthwise=True))
    relu("r2")
    add(*_fixed_weighted(rng, Conv2D, "pw", (8, 1, 1, 6), t, exact, share))
    pool_t = Fixed(t.width + 2, t.int_bits + 2, True)
    add(MaxPool2D("mp", pool_size=(2, 2), accum_t=pool_t, result_t=pool_t), pool_t)
    add(*_fixed_weighted(rng, Conv2D, "c3", (7, 2, 2, 8), t, exact, share))
    relu("r3")
    avg_t = Fixed(t.width + 4, t.int_bits + 2, True)
    add(AvgPool2D("ap", pool_size=(2, 2), stride=(1, 1), accum_t=avg_t, result_t=avg_t), avg_t)
    layers.append(Flatten("flat"))
    add(*_fixed_weighted(rng, Dense, "fc1", (9, 2 * 2 * 7), t, exact, share))
    relu("r4")
    add(*_fixed_weighted(rng, Dense, "fc2", (3, 9), t, exact, 0.0))
    return Graph.chain("fixed_cnn", (8, 8, 2), layers, in_t)


def fixed_inputs(graph: Graph, rng, n: int = 24) -> np.ndarray:
    t = graph.input_t
    x = rng.integers(t.min_int, t.max_int + 1, size=(n, *graph.input_shape))
    x[0], x[1] = t.min_int, t.max_int
    return x


# -- the int8 dialect --------------------------------------------------------------------------

def _affine(rng) -> Int8Affine:
    return Int8Affine(float(rng.uniform(0.01, 0.2)), int(rng.integers(-128, 60)))


def int8_conv(rng, name, source, shape, in_t, out_t, share=0.4, activation="relu", bias=(-3000, 3000),
              weight=None, **geometry) -> Int8Conv2D:
    w = _kill(rng, rng.integers(-127, 128, size=shape), share) if weight is None else weight
    scales = np.full(shape[0], 0.004)
    mult, shift = conv_multipliers(in_t.scale, scales, out_t.scale)
    lo, hi = activation_range(activation, out_t)
    return Int8Conv2D(name, weight=w, bias=rng.integers(*bias, size=shape[0]), **int8_types(out_t),
                      weight_scale=scales, out_multiplier=mult, out_shift=shift, act_min=lo, act_max=hi,
                      inputs=(source,), **geometry)


def int8_cnn(rng, share: float = 0.4) -> Graph:
    """MobileNet's pattern: conv 3x3 -> (depthwise 3x3 padded -> pointwise 1x1) x 2 ->
    average pool -> reshape -> fully connected."""
    ts = [_affine(rng) for _ in range(8)]
    pad = ((1, 1), (1, 1))
    layers = [
        int8_conv(rng, "c0", "x", (8, 3, 3, 3), ts[0], ts[1], share, stride=(2, 2), padding=((0, 1), (0, 1))),
        int8_conv(rng, "dw1", "c0", (8, 3, 3, 1), ts[1], ts[2], 0.0, padding=pad, depthwise=True),
        int8_conv(rng, "pw1", "dw1", (12, 1, 1, 8), ts[2], ts[3], share),
        int8_conv(rng, "dw2", "pw1", (12, 3, 3, 1), ts[3], ts[4], 0.0, stride=(2, 2), padding=((0, 1), (0, 1)),
                  depthwise=True),
        int8_conv(rng, "pw2", "dw2", (16, 1, 1, 12), ts[4], ts[5], share),
        Int8AvgPool2D("pool", pool_size=(3, 3), stride=(3, 3), result_t=ts[5], accum_t=ts[5], inputs=("pw2",)),
        Reshape("flat", target_shape=(16,), inputs=("pool",)),
    ]
    w = rng.integers(-127, 128, size=(4, 16))
    mult, shift = conv_multipliers(ts[5].scale, np.full(4, 0.004), ts[6].scale)
    layers.append(Int8Dense("fc", weight=w, bias=rng.integers(-3000, 3000, size=4), **int8_types(ts[6]),
                            weight_scale=np.full(4, 0.004), out_multiplier=mult, out_shift=shift, inputs=("flat",)))
    return Graph("int8_cnn", (GraphInput("x", (12, 12, 3), ts[0]),), tuple(layers))


def int8_inputs(graph: Graph, rng, n: int = 16) -> np.ndarray:
    x = rng.integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x
