"""The integer reference against the rational oracle, on both of its Dense paths."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.errors import ModelError, ShapeError
from hwprune.ir import Dense, Flatten, Graph, ReLU, Softmax
from hwprune.ir.fixed import Fixed, Overflow, Rounding, quantize, to_real

import oracle


def quantized_dense(rng, n_in, n_out, weight_t, bias_t, accum_t, result_t, zero_row=False, name="fc"):
    w = to_real(quantize(rng.normal(0, 0.7, (n_out, n_in)), weight_t), weight_t)
    if zero_row:
        w[n_out // 2] = 0.0
    b = to_real(quantize(rng.normal(0, 0.5, n_out), bias_t), bias_t)
    return Dense(name, w, b, weight_t, bias_t, accum_t, result_t)


CASES = {
    # accumulator wide and exact: the vectorised path
    "wide": (Fixed(8, 2, True, Rounding.RND, Overflow.SAT), Fixed(16, 3), Fixed(24, 10),
             Fixed(8, 3, True, Rounding.RND, Overflow.SAT)),
    # narrow saturating accumulator that rounds every product: the sequential path
    "narrow_sat": (Fixed(6, 1), Fixed(6, 2), Fixed(7, 3, True, Rounding.RND, Overflow.SAT),
                   Fixed(5, 2, True, Rounding.TRN, Overflow.SAT)),
    # narrow wrapping accumulator: modular, so vectorised with a final wrap
    "narrow_wrap": (Fixed(6, 1), Fixed(6, 2), Fixed(9, 3, True, Rounding.TRN, Overflow.WRAP),
                    Fixed(6, 2, False, Rounding.RND, Overflow.WRAP)),
    # exact products but an accumulator that can overflow: WRAP vectorised, SAT sequential
    "exact_wrap_overflows": (Fixed(6, 1), Fixed(6, 2), Fixed(13, 3, True, Rounding.TRN, Overflow.WRAP),
                             Fixed(8, 3, True, Rounding.RND, Overflow.SAT)),
    "exact_sat_overflows": (Fixed(6, 1), Fixed(6, 2), Fixed(13, 3, True, Rounding.TRN, Overflow.SAT),
                            Fixed(8, 3, True, Rounding.TRN, Overflow.WRAP)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("signed_input", [True, False])
def test_dense_matches_oracle(rng, case, signed_input):
    weight_t, bias_t, accum_t, result_t = CASES[case]
    in_t = Fixed(7, 2, signed_input, Rounding.RND, Overflow.SAT)
    layer = quantized_dense(rng, 9, 6, weight_t, bias_t, accum_t, result_t, zero_row=True)
    graph = Graph.chain("g", (9,), (layer,), in_t)
    x = rng.integers(in_t.min_int, in_t.max_int, (40, 9), endpoint=True)
    got = reference.run(graph, x)
    want = np.array([oracle.dense(row, in_t, layer) for row in x])
    assert np.array_equal(got, want), np.argwhere(got != want)[:5]


def test_relu_casts_to_its_own_type(rng):
    in_t = Fixed(8, 4)
    relu_t = Fixed(4, 2, False, Rounding.RND, Overflow.SAT)
    graph = Graph.chain("g", (5,), (ReLU("r", relu_t),), in_t)
    x = np.arange(-128, 128).reshape(-1, 1).repeat(5, axis=1)[::5]
    got = reference.run(graph, x)
    want = np.array([[oracle.cast_value(max(oracle.value(v, in_t), 0), relu_t) for v in row] for row in x])
    assert np.array_equal(got, want)


def test_trace_names_every_layer_and_softmax_passes_through(rng):
    t = Fixed(8, 3, True, Rounding.RND, Overflow.SAT)
    layer = quantized_dense(rng, 4, 3, Fixed(8, 1), Fixed(16, 4), Fixed(24, 8), t)
    graph = Graph.chain("g", (2, 2), (Flatten("flat"), layer, ReLU("r", t.with_(signed=False)), Softmax("sm")), t)
    x = rng.integers(-128, 128, (5, 2, 2))
    steps = reference.run(graph, x, trace=True)
    assert [name for name, _ in steps] == ["flat", "fc", "r", "sm"]
    assert np.array_equal(steps[-1][1], steps[-2][1])
    assert steps[-1][1].shape == (5, 3)


def test_reference_refuses_float_graphs_and_bad_shapes(rng):
    layer = Dense("fc", rng.normal(size=(3, 4)), np.zeros(3))
    with pytest.raises(ModelError, match="not quantized"):
        reference.run(Graph.chain("g", (4,), (layer,)), np.zeros((1, 4), dtype=np.int64))
    t = Fixed(8, 3)
    q = quantized_dense(rng, 4, 3, Fixed(8, 1), Fixed(16, 4), Fixed(24, 8), t)
    with pytest.raises(ShapeError, match="expects"):
        reference.run(Graph.chain("g", (4,), (q,), t), np.zeros((2, 5), dtype=np.int64))
