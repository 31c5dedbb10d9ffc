"""Storage formats of Dense layers: encodings round-trip, byte counts, format choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwprune.backends.c.formats import (
    FORMATS, FormatNotApplicable, choose_format, choose_formats, decode_weights, encode, log2_binomial,
)
from hwprune.errors import ModelError, OptionError
from hwprune.ir import Dense, Graph, ReLU
from hwprune.ir.fixed import Fixed, Overflow, Rounding, to_real
from hwprune.reference import dense_integers

from codegen_graphs import calibrated_mlp

W8 = Fixed(8, 1, True, Rounding.RND, Overflow.SAT)


def layer_with(w_int: np.ndarray, bias_int=None, weight_t: Fixed = W8) -> Dense:
    out = w_int.shape[0]
    bias_t = Fixed(16, 4)
    b = np.zeros(out, dtype=np.int64) if bias_int is None else np.asarray(bias_int)
    return Dense("fc", to_real(w_int, weight_t), to_real(b, bias_t), weight_t, bias_t, Fixed(24, 10), Fixed(8, 4))


def random_ints(rng, shape, sparsity):
    w = rng.integers(-128, 128, size=shape)
    w[rng.random(shape) < sparsity] = 0
    return w


@pytest.mark.parametrize("shape", [(7, 13), (13, 300), (1, 1), (5, 256), (3, 257)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips(rng, shape, sparsity, fmt):
    w = random_ints(rng, shape, sparsity)
    if fmt == "nm":  # keep at most 2 nonzeros in every 4 inputs
        w[:, np.arange(shape[1]) % 4 >= 2] = 0
    if fmt == "csr8" and (shape[1] > 256 or np.count_nonzero(w, axis=1).max() > 254):
        with pytest.raises(FormatNotApplicable, match="uint8"):  # auto skips it for this layer
            encode(layer_with(w), fmt)
        return
    if fmt == "csro":  # a Dense layer has no window to take offsets in: tests/codegen/test_csro.py
        with pytest.raises(FormatNotApplicable, match="conv layers only"):
            encode(layer_with(w), fmt)
        return
    storage = encode(layer_with(w), fmt)
    assert np.array_equal(decode_weights(storage), w)
    assert storage.nonzero_weights == np.count_nonzero(w)
    assert storage.total_weights == w.size


def test_csr_index_and_pointer_types_are_the_narrowest(rng):
    small = encode(layer_with(random_ints(rng, (4, 256), 0.0)), "csr")
    assert small.array("columns").c_type == "uint8_t"  # 256 inputs: columns 0..255
    assert small.array("row_ptr").c_type == "uint16_t"  # 1024 nonzeros
    wide = encode(layer_with(random_ints(rng, (2, 257), 0.9)), "csr")
    assert wide.array("columns").c_type == "uint16_t"
    w = np.zeros((16, 16), dtype=np.int64)
    w.reshape(-1)[:255] = 1
    assert encode(layer_with(w), "csr").array("row_ptr").c_type == "uint8_t"
    w.reshape(-1)[:256] = 1
    assert encode(layer_with(w), "csr").array("row_ptr").c_type == "uint16_t"


def test_byte_counts_and_bits_per_nonzero(rng):
    w = random_ints(rng, (10, 30), 0.8)
    nnz = np.count_nonzero(w)
    dense = encode(layer_with(w), "dense")
    assert (dense.value_bytes, dense.index_bytes, dense.pointer_bytes) == (300, 0, 0)
    csr = encode(layer_with(w), "csr")
    assert (csr.value_bytes, csr.index_bytes, csr.pointer_bytes) == (nnz, nnz, 11)
    assert csr.weight_bytes == 2 * nnz + 11
    assert csr.bits_per_nonzero == csr.weight_bytes * 8 / nnz
    wide = encode(layer_with(w // 8, weight_t=Fixed(12, 3)), "dense")
    assert wide.array("values").c_type == "int16_t" and wide.value_bytes == 600


def test_csr_is_smaller_than_dense_at_90_percent_sparsity(rng):
    layer = layer_with(random_ints(rng, (64, 300), 0.9))
    dense, csr = encode(layer, "dense"), encode(layer, "csr")
    assert csr.weight_bytes < dense.weight_bytes
    chosen = choose_format(layer)
    assert chosen.weight_bytes == min(encode(layer, f).weight_bytes for f in FORMATS if f not in ("nm", "csr8", "csro"))
    assert chosen.format == "rice"  # coded gaps are the smallest index at 90 %


def test_auto_prefers_dense_on_a_tie_and_when_smaller(rng):
    full = layer_with(random_ints(rng, (8, 8), 0.0) | 1)
    assert choose_format(full).format == "dense"
    # 3 of 4 nonzero in one row: dense 4 bytes; csr 3 values + 3 columns + 2 pointers = 8.
    assert choose_format(layer_with(np.array([[1, 2, 0, 3]]))).format == "dense"
    # All zero 1x3: dense 3 bytes, csr 0 + 0 + 2 pointers = 2, rel and rice one padding
    # byte each: the first registered of the smallest.
    empty = choose_format(layer_with(np.zeros((1, 3), dtype=np.int64)))
    assert (empty.format, empty.weight_bytes) == ("rel", 1)


def test_entropy_bound_is_log2_binomial():
    assert log2_binomial(10, 3) == pytest.approx(math.log2(math.comb(10, 3)), abs=1e-9)
    assert log2_binomial(5000, 400) == pytest.approx(math.log2(math.comb(5000, 400)), rel=1e-12)
    assert log2_binomial(7, 0) == 0.0 and log2_binomial(7, 7) == pytest.approx(0.0, abs=1e-12)
    layer = layer_with(np.eye(16, dtype=np.int64))
    storage = encode(layer, "csr")
    assert storage.entropy_bits == pytest.approx(math.log2(math.comb(256, 16)), abs=1e-9)
    assert storage.weight_bytes * 8 > storage.entropy_bits  # no format beats the bound


def test_bias_is_stored_cast_to_the_accumulator_and_omitted_when_zero():
    layer = layer_with(np.ones((3, 2), dtype=np.int64), bias_int=[0, 0, 0])
    assert encode(layer, "dense").bias_bytes == 0 and not encode(layer, "dense").has("bias")
    layer = layer_with(np.ones((3, 2), dtype=np.int64), bias_int=[1000, -7, 3])
    stored = encode(layer, "csr").array("bias")
    # bias fixed<16,4> (12 fraction bits) into accum fixed<24,10> (14): times 4.
    assert stored.data.tolist() == [4000, -28, 12] == dense_integers(layer)[1].tolist()
    assert stored.c_type == "int16_t"


def test_choose_formats_policy_and_overrides(rng):
    graph, _ = calibrated_mlp("m", [20, 16, 4], rng, sparsity=0.9)
    assert [s.format for s in choose_formats(graph, "dense")] == ["dense", "dense"]
    assert [s.format for s in choose_formats(graph, {"fc2": "csr", "*": "dense"})] == ["dense", "csr"]
    assert [s.name for s in choose_formats(graph, {"fc1": "dense"})] == ["fc1", "fc2"]
    with pytest.raises(OptionError, match="fc9"):
        choose_formats(graph, {"fc9": "csr"})
    with pytest.raises(OptionError, match="unknown format policy 'rle'"):
        choose_formats(graph, "rle")


def test_unquantized_layers_are_model_errors(rng):
    layer = Dense("fc", rng.normal(size=(3, 4)))
    with pytest.raises(ModelError, match="not quantized"):
        encode(layer, "dense")
    with pytest.raises(ModelError, match="not quantized"):
        dense_integers(layer)
    graph = Graph.chain("g", (4,), (layer, ReLU("r")))
    with pytest.raises(ModelError, match="not quantized"):
        choose_formats(graph)
