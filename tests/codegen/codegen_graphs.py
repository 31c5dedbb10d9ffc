"""Quantized graphs for the C backend tests.

Two kinds: ``calibrated_mlp`` goes through quant.calibrate as a user's model would;
``random_typed_graph`` hand-sets every type at random (widths 2..16, int_bits below
zero and above the width, TRN/RND, WRAP/SAT, narrow saturating and wrapping
accumulators) so that every arithmetic path of the kernels is taken.
"""

from __future__ import annotations

import numpy as np

from hwprune.ir import Dense, Flatten, Graph, ReLU, Softmax
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.ir.fixed import Fixed, Overflow, Rounding, quantize, to_real

# TRN and RND: the random graphs also go through da4ml, which has no RND_CONV (half to even is
# swept by test_fixed_c, test_numeric_oracle, test_firmware_helpers and the QKeras tests).
MODES = [(r, o) for r in (Rounding.TRN, Rounding.RND) for o in Overflow]


def sparse_normal(rng, shape, sparsity: float) -> np.ndarray:
    w = rng.normal(size=shape)
    w[rng.random(shape) < sparsity] = 0.0
    return w


def calibrated_mlp(name: str, sizes, rng, sparsity=0.0, zero_rows=(), zero_layers=(), signed_input=True,
                   config=QuantConfig(8, 8), softmax=False, flatten_shape=None) -> tuple[Graph, np.ndarray]:
    """A ReLU MLP quantized by calibrate; returns the graph and float calibration data."""
    layers = []
    if flatten_shape is not None:
        layers.append(Flatten("flatten"))
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = sparse_normal(rng, (n_out, n_in), sparsity) / np.sqrt(n_in)
        if k in zero_layers:
            w[:] = 0.0
        for row in zero_rows:
            if k == 0:
                w[row] = 0.0
        layers.append(Dense(f"fc{k + 1}", w, rng.normal(size=n_out) * 0.3))
        if k < len(sizes) - 2:
            layers.append(ReLU(f"relu{k + 1}"))
    if softmax:
        layers.append(Softmax("softmax"))
    input_shape = tuple(flatten_shape) if flatten_shape is not None else (sizes[0],)
    graph = Graph.chain(name, input_shape, layers)
    x = rng.normal(size=(64, *input_shape))
    if not signed_input:
        x = np.abs(x)
    return calibrate(graph, x, config), x


def random_type(rng, width_range=(2, 16), signed=None, modes=MODES) -> Fixed:
    width = int(rng.integers(width_range[0], width_range[1] + 1))
    int_bits = int(rng.integers(-2, width + 3))
    if signed is None:
        signed = bool(rng.random() < 0.8)
    rounding, overflow = modes[int(rng.integers(len(modes)))]
    return Fixed(width, int_bits, signed, rounding, overflow)


def _on_grid(rng, shape, t: Fixed, sparsity: float) -> np.ndarray:
    """Random floats exactly on t's grid, spread over its whole range."""
    q = rng.integers(t.min_int, t.max_int + 1, size=shape)
    q[rng.random(shape) < sparsity] = 0
    return to_real(q, t)


def random_accum(rng, in_t: Fixed, weight_t: Fixed, n_in: int) -> Fixed:
    """Exact and wide (calibrate's choice), or narrow with a random shift and mode."""
    product_frac = in_t.frac_bits + weight_t.frac_bits
    kind = rng.integers(3)
    if kind == 0:  # never overflows, keeps every product: the fast path
        width = min(in_t.width + weight_t.width + int(np.ceil(np.log2(n_in + 1))) + 2, 62)
        return Fixed(width, width - product_frac, True, Rounding.TRN, Overflow.WRAP)
    width = int(rng.integers(4, 41))  # past 31 bits the general path needs int64
    frac = product_frac + int(rng.integers(-6, 4))  # below: rounds each product; above: shifts left
    rounding, overflow = MODES[int(rng.integers(4))]
    return Fixed(width, width - frac, bool(rng.random() < 0.9), rounding, overflow)


def random_typed_graph(name: str, sizes, seed: int, sparsity=0.5, relu_prob=0.6, width_range=(2, 16),
                       input_signed=None) -> Graph:
    rng = np.random.default_rng(seed)
    input_t = random_type(rng, width_range, signed=input_signed)
    in_t = input_t
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        weight_t = random_type(rng, width_range)
        bias_t = random_type(rng, width_range)
        accum_t = random_accum(rng, in_t, weight_t, n_in)
        result_t = random_type(rng, width_range)
        w = _on_grid(rng, (n_out, n_in), weight_t, sparsity)
        b = _on_grid(rng, (n_out,), bias_t, 0.2)
        layers.append(Dense(f"fc{k + 1}", w, b, weight_t, bias_t, accum_t, result_t))
        in_t = result_t
        if rng.random() < relu_prob:
            relu_t = random_type(rng, width_range)
            layers.append(ReLU(f"relu{k + 1}", relu_t))
            in_t = relu_t
    return Graph.chain(name, (sizes[0],), layers, input_t)


def wide_graph() -> Graph:
    """Values stored in int64_t and uint32_t, products and sums that need int64 in C."""
    rng = np.random.default_rng(7)
    in_t = Fixed(16, 4, True, Rounding.RND, Overflow.SAT)
    w1_t, w2_t = Fixed(16, 2, True), Fixed(12, 3, False)
    fc1 = Dense("fc1", _on_grid(rng, (6, 5), w1_t, 0.3), _on_grid(rng, (6,), Fixed(30, 8), 0.0), w1_t, Fixed(30, 8),
                Fixed(44, 14, True, Rounding.RND, Overflow.SAT), Fixed(40, 12, True, Rounding.RND, Overflow.WRAP))
    relu = ReLU("relu1", Fixed(32, 10, False, Rounding.TRN, Overflow.SAT))
    fc2 = Dense("fc2", _on_grid(rng, (4, 6), w2_t, 0.3), _on_grid(rng, (4,), Fixed(20, 12), 0.0), w2_t, Fixed(20, 12),
                Fixed(50, 20, True, Rounding.TRN, Overflow.WRAP), Fixed(31, 5, False, Rounding.RND, Overflow.SAT))
    return Graph.chain("wide", (5,), (fc1, relu, fc2), in_t)


def random_inputs(graph: Graph, rng, n: int = 40) -> np.ndarray:
    """Integers over the input type's whole range, with its extremes and zero included."""
    t = graph.input_t
    size = int(np.prod(graph.input_shape))
    x = rng.integers(t.min_int, t.max_int + 1, size=(n, size))
    x[0], x[1], x[2] = t.min_int, t.max_int, 0
    return x.reshape(n, *graph.input_shape)


def quantized_inputs(graph: Graph, x) -> np.ndarray:
    return quantize(x, graph.input_t)


def small_dag(rng):
    """A small CNN with branches, for the hls4ml backend (every kind hls4ml maps): conv ->
    relu -> conv -> ReLU1 (hls4ml's relu1 in io_parallel), a skip Add of the clipped (unsigned) branch and the signed first
    conv, a Concatenate of three tensors, max pooling, a Dense clipped to [-1, 1] (hardtanh)
    gated by a Multiply with a Dense on the global average of the joined tensor (over 12
    positions: a division that is no shift)."""
    from hwprune.ir import Add, Clip, Concatenate, Conv2D, GlobalAvgPool2D, GraphInput, MaxPool2D, Multiply

    def conv(name, cin, cout, source):
        return Conv2D(name, rng.normal(size=(cout, 3, 3, cin)) * 0.4, rng.normal(size=cout) * 0.1,
                      padding=((1, 1), (1, 1)), inputs=(source,))

    layers = (conv("c0", 2, 3, "input"), ReLU("r0", inputs=("c0",)), conv("c1", 3, 3, "r0"),
              Clip("r1", 0.0, 1.0, inputs=("c1",)),
              Add("add", inputs=("r1", "c0")), Concatenate("cat", axis=-1, inputs=("add", "c0", "r0")),
              MaxPool2D("mp", pool_size=(2, 2), inputs=("cat",)), Flatten("fl", inputs=("mp",)),
              Dense("fc1", rng.normal(size=(6, 18)) * 0.3, rng.normal(size=6) * 0.1, inputs=("fl",)),
              Clip("ht", -1.0, 1.0, inputs=("fc1",)), GlobalAvgPool2D("gap", inputs=("cat",)),
              Dense("gate", rng.normal(size=(6, 9)) * 0.3, None, inputs=("gap",)),
              Multiply("mul", inputs=("ht", "gate")),
              Dense("fc2", rng.normal(size=(4, 6)) * 0.3, None, inputs=("mul",)))
    return Graph("dag", (GraphInput("input", (4, 3, 2)),), layers)
