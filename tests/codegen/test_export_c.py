"""The generated C compiles warning-free (-std=c99 -Wall -Wextra -Werror -pedantic) and
equals the integer reference bit for bit, layer by layer, in every storage format."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import choose_formats
from hwprune.backends.c.plan import plan_model
from hwprune.errors import ModelError
from hwprune.harness.build import HOST_FLAGS
from hwprune.harness.engines import HostCEngine
from hwprune.ir import Dense, Flatten, Graph, Layer, ReLU
from hwprune.quant.calibrate import QuantConfig
from hwprune.ir.fixed import Fixed
from hwprune.paths import templates_dir

from codegen_graphs import calibrated_mlp, quantized_inputs, random_inputs, random_typed_graph, wide_graph

PEDANTIC = (*HOST_FLAGS, "-pedantic")
ENGINE = HostCEngine(flags=PEDANTIC)
FORMATS = ["dense", "csr", "bitmask", "rel", "rice", "unrolled"]


def assert_bit_exact(graph: Graph, x_int: np.ndarray, export_dir, formats) -> None:
    export_c(graph, export_dir, formats)
    run = ENGINE.run(export_dir, x_int)
    expected = reference.run(graph, x_int, trace=True)
    assert [name for name, _ in run.trace] == [layer.name for layer in graph.layers]
    for (name, want), (_, got) in zip(expected, run.trace):
        if not np.array_equal(want, got):
            vector, element = (int(i) for i in np.argwhere(want.reshape(len(want), -1) != got.reshape(len(got), -1))[0])
            pytest.fail(f"{graph.name} ({formats}): layer {name!r} vector {vector} element {element}: "
                        f"reference {want.reshape(len(want), -1)[vector, element]}, "
                        f"C {got.reshape(len(got), -1)[vector, element]}")
    assert np.array_equal(run.outputs, expected[-1][1])


def _calibrated(case: str, rng):
    if case == "odd_7_13_5":  # a zero row, signed input, ends in softmax
        return calibrated_mlp("odd", [7, 13, 5], rng, sparsity=0.5, zero_rows=(3,), softmax=True)
    if case == "unsigned_input":
        return calibrated_mlp("unsigned_in", [9, 6, 4], rng, sparsity=0.3, signed_input=False)
    if case == "zero_layer":
        return calibrated_mlp("zero_layer", [6, 8, 3], rng, zero_layers=(1,))
    if case == "300_inputs":  # csr columns need uint16
        return calibrated_mlp("wide_in", [300, 24, 10], rng, sparsity=0.9, config=QuantConfig(6, 7))
    if case == "flatten":
        return calibrated_mlp("flat", [12, 5], rng, flatten_shape=(3, 4))
    if case == "16_bits":  # 32-bit products: int64 accumulation
        return calibrated_mlp("bits16", [10, 8, 3], rng, sparsity=0.4, config=QuantConfig(16, 16))
    if case == "2_bits":
        return calibrated_mlp("bits2", [8, 6, 3], rng, config=QuantConfig(2, 2))
    raise KeyError(case)


CALIBRATED = ["odd_7_13_5", "unsigned_input", "zero_layer", "300_inputs", "flatten", "16_bits", "2_bits"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CALIBRATED)
def test_calibrated_models_are_bit_exact(case, fmt, tmp_path):
    rng = np.random.default_rng(sum(map(ord, case)))
    graph, x = _calibrated(case, rng)
    x_int = np.concatenate([quantized_inputs(graph, x[:30]), random_inputs(graph, rng, 20)])
    assert_bit_exact(graph, x_int, tmp_path / fmt, fmt)


RANDOM_SEEDS = range(6)
RANDOM_SIZES = [7, 13, 5, 9, 4, 6]


def _random_graph(seed: int) -> Graph:
    return random_typed_graph(f"random{seed}", RANDOM_SIZES, seed, sparsity=0.5)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_hand_typed_models_are_bit_exact(seed, fmt, tmp_path):
    graph = _random_graph(seed)
    x_int = random_inputs(graph, np.random.default_rng(seed), 60)
    assert_bit_exact(graph, x_int, tmp_path / fmt, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_int64_values_and_uint32_storage_are_bit_exact(fmt, tmp_path):
    graph = wide_graph()
    assert_bit_exact(graph, random_inputs(graph, np.random.default_rng(3), 60), tmp_path / fmt, fmt)


def test_tested_models_take_every_arithmetic_path():
    """The graphs above exercise each way a Dense kernel can compute (not a tautology:
    it fails if the generators drift towards one path)."""
    seen = set()
    graphs = [_random_graph(s) for s in RANDOM_SEEDS] + [wide_graph()]
    for graph in graphs:
        for step in plan_model(graph, choose_formats(graph, "dense")).steps:
            a = step.arithmetic
            if a is None:
                continue
            if a.fast:
                seen.add(("fast", a.acc_bits))
                seen.add(("fast scaled",) if a.scale_shift else ("fast unscaled",))
                if a.wrap_accumulator:
                    seen.add(("fast wrap",))
            else:
                seen.add(("general", a.acc_bits))
                seen.add(("general", "round products" if a.product.shift > 0 else "shift products left"))
                seen.add(("general", a.accum_t.overflow.value, a.accum_t.rounding.value))
            seen.add(("result cast", a.result.bits))
    expected = {
        ("fast", 32), ("fast", 64), ("fast scaled",), ("fast unscaled",), ("fast wrap",),
        ("general", 32), ("general", 64), ("general", "round products"), ("general", "shift products left"),
        ("general", "SAT", "RND"), ("general", "SAT", "TRN"), ("general", "WRAP", "RND"), ("general", "WRAP", "TRN"),
        ("result cast", 32), ("result cast", 64),
    }
    assert expected <= seen, sorted(expected - seen)


def test_production_build_without_trace_equals_reference(tmp_path, rng):
    graph, x = _calibrated("odd_7_13_5", rng)
    export_c(graph, tmp_path, "csr")
    x_int = quantized_inputs(graph, x)
    run = HostCEngine(trace=False, flags=PEDANTIC).run(tmp_path, x_int)
    assert run.trace == ()
    assert np.array_equal(run.outputs, reference.run(graph, x_int))


def test_a_model_without_computing_layers_copies_its_input(tmp_path, rng):
    graph = Graph.chain("just_flatten", (2, 3), (Flatten("flatten"),), Fixed(8, 3))
    assert_bit_exact(graph, random_inputs(graph, rng, 5), tmp_path, "auto")


def test_exported_files_and_their_contents(tmp_path, rng):
    graph, _ = calibrated_mlp("digits", [64, 32, 10], rng, sparsity=0.9, softmax=True)
    export = export_c(graph, tmp_path, {"fc1": "csr", "fc2": "dense"})
    names = {p.name for p in export.files}
    assert {"model.h", "model.c", "model_weights.h", "hwprune_fixed.h", "export.json", "graph"} <= names
    assert export.formats == {"fc1": "csr", "fc2": "dense"}
    assert export.weight_bytes == sum(s.weight_bytes for s in export.layers) > 0
    header = (tmp_path / "model.h").read_text()
    assert "#define DIGITS_INPUT_SIZE 64" in header and "#define DIGITS_OUTPUT_SIZE 10" in header
    assert re.search(r"int digits_predict\(const digits_input_t \*input, digits_output_t \*output\);", header)
    assert "hwprune 0.1.0" in header and "csr" in header and "dense" in header
    source = (tmp_path / "model.c").read_text()
    weights = (tmp_path / "model_weights.h").read_text()
    assert "malloc" not in source and "static const int8_t hwprune_digits_fc1_values[" in weights
    assert re.search(r"static const uint8_t hwprune_digits_fc1_columns\[", weights)
    assert "static union" in source and "#ifdef HWPRUNE_TRACE" in source
    assert (tmp_path / "hwprune_fixed.h").read_bytes() == (templates_dir() / "c" / "hwprune_fixed.h").read_bytes()


def test_graphs_the_backend_cannot_export_are_model_errors(tmp_path, rng):
    graph = Graph.chain("float_model", (4,), (Dense("fc", rng.normal(size=(3, 4))), ReLU("relu")))
    with pytest.raises(ModelError, match="not quantized"):
        export_c(graph, tmp_path)

    class Mystery(Layer):
        kind = "mystery"

        def output_shape(self, input_shape):
            return input_shape

    graph = Graph.chain("mystery_model", (4,), (Mystery("odd"),), Fixed(8, 3))
    with pytest.raises(ModelError, match="no kernel for 'mystery'"):
        export_c(graph, tmp_path)
