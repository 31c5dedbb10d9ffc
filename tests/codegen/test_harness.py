"""The harness: engines, bit-exact comparison and its report, verify, size measurement."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.errors import DataError, OptionError, ToolchainError
from hwprune.harness import (
    ENGINES, Engine, EngineRun, HostCEngine, ReferenceEngine, compare, get_engine, measure_export, register_engine,
    verify,
)
from hwprune.harness.build import compile_object, find_cc
from hwprune.harness.engines import check_inputs
from hwprune.harness.measure import SIZE_DEFINES
from hwprune.harness.measure import section_sizes

from codegen_graphs import calibrated_mlp, quantized_inputs


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(11)
    graph, x = calibrated_mlp("harnessed", [7, 13, 5], rng, sparsity=0.5, softmax=True)
    return graph, quantized_inputs(graph, x[:25])


# -- compare ---------------------------------------------------------------------------------


def test_compare_equal_traces_is_bit_exact():
    trace = [("a", np.arange(6).reshape(2, 3)), ("b", np.ones((2, 2), dtype=np.int64))]
    c = compare(trace, [(n, v.copy()) for n, v in trace], "e")
    assert c.bit_exact and c.mismatches == 0 and c.vectors == 2 and c.layers == ("a", "b")
    assert "bit-exact on 2 vectors" in c.report()


def test_compare_points_at_the_first_differing_layer_and_element():
    want = [("a", np.zeros((3, 4), dtype=np.int64)), ("b", np.zeros((3, 2), dtype=np.int64))]
    got_a = np.zeros((3, 4), dtype=np.int64)
    got_a[1, 2] = 7
    got_a[2, 0] = -1
    got_b = np.ones((3, 2), dtype=np.int64)
    c = compare(want, [("a", got_a), ("b", got_b)], "eng", max_examples=1)
    assert not c.bit_exact and c.first_layer == "a"
    assert c.mismatches == 2 + 6 and c.mismatched_vectors == 3
    (m,) = c.first_mismatches
    assert (m.engine, m.layer, m.vector, m.element, m.expected, m.got) == ("eng", "a", 1, 2, 0, 7)
    assert "layer 'a', vector 1, element 2: expected 0, got 7" in c.report()


def test_compare_multi_dimensional_elements_and_output_only_traces():
    want = [("conv", np.zeros((1, 2, 3), dtype=np.int64)), ("out", np.zeros((1, 2), dtype=np.int64))]
    got = np.zeros((1, 2, 3), dtype=np.int64)
    got[0, 1, 2] = 5
    assert compare(want, [("conv", got)]).first_mismatches[0].element == (1, 2)
    only_output = compare(want, [("out", np.zeros((1, 2), dtype=np.int64))])
    assert only_output.bit_exact and only_output.layers == ("out",)


def test_compare_reports_shape_and_name_problems():
    want = [("a", np.zeros((2, 3), dtype=np.int64))]
    assert "expected shape (2, 3), got (2, 4)" in compare(want, [("a", np.zeros((2, 4)))]).report()
    c = compare(want, [("zz", np.zeros((2, 3)))])
    assert not c.bit_exact and "'zz' is not in the reference" in c.report()


# -- engines and verify ------------------------------------------------------------------------


def test_verify_passes_and_a_corrupted_model_c_is_reported(model, tmp_path):
    graph, x_int = model
    export_c(graph, tmp_path / "good", "dense")
    good = verify(tmp_path / "good", x_int)
    assert good.bit_exact and good.comparison("host").layers == tuple(l.name for l in graph.layers)

    export_c(graph, tmp_path / "bad", "dense")
    source = (tmp_path / "bad" / "model.c").read_text()
    # fc1 writes its 13 outputs into a buffer; nudge element 4 of it after every call.
    call = re.search(r"\n    (hwprune_harnessed_\d+_fc1)\(input, (hwprune_buffer_0\.\w+)\);", source)
    assert call, "the fc1 call in harnessed_predict"
    corrupted = source.replace(call.group(0), call.group(0) + f"\n    {call.group(2)}[4] += 1;")
    (tmp_path / "bad" / "model.c").write_text(corrupted)
    bad = verify(tmp_path / "bad", x_int)
    c = bad.comparison("host")
    assert not bad.bit_exact and c.first_layer == "fc1"
    first = c.first_mismatches[0]
    assert (first.layer, first.vector, first.element, first.got - first.expected) == ("fc1", 0, 4, 1)
    assert "layer 'fc1', vector 0, element 4" in bad.report()


def test_production_and_traced_builds_and_graph_input(model, tmp_path):
    graph, x_int = model
    export_c(graph, tmp_path, "csr")
    traced = HostCEngine().run(tmp_path, x_int)
    from_graph = HostCEngine().run(graph, x_int)  # exports to a temporary folder itself
    expected = reference.run(graph, x_int)
    assert np.array_equal(traced.outputs, expected) and np.array_equal(from_graph.outputs, expected)
    ref = ReferenceEngine().run(tmp_path, x_int)
    assert np.array_equal(ref.outputs, expected) and [n for n, _ in ref.trace] == [n for n, _ in traced.trace]


def test_inputs_outside_the_input_type_are_data_errors(model, tmp_path):
    graph, x_int = model
    t = graph.input_t
    with pytest.raises(DataError, match="outside the input type"):
        check_inputs(graph, np.full((1, 7), t.max_int + 1))
    with pytest.raises(DataError, match="integer dtype"):
        check_inputs(graph, np.zeros((1, 7)))
    with pytest.raises(DataError, match="shape"):
        check_inputs(graph, np.zeros((2, 8), dtype=np.int64))
    assert check_inputs(graph, np.zeros(7, dtype=np.int8)).shape == (1, 7)


class _Absent(Engine):
    name = "absent"

    def unavailable_reason(self) -> str:
        return "needs a chip nobody has"

    def run(self, model, x_int) -> EngineRun:  # pragma: no cover - never available
        raise AssertionError


class _OffByOne(Engine):
    name = "off-by-one"

    def run(self, model, x_int) -> EngineRun:
        out = ReferenceEngine().run(model, x_int).outputs.copy()
        out[-1, -1] += 1
        return EngineRun(self.name, out, ())


def test_registry_and_engines_without_trace(model, tmp_path):
    graph, x_int = model
    export_c(graph, tmp_path)
    assert {"reference", "host"} <= set(ENGINES)
    with pytest.raises(OptionError, match="unknown engine 'nope'"):
        get_engine("nope")
    register_engine("off-by-one", _OffByOne)
    try:
        result = verify(tmp_path, x_int, engines=["off-by-one", _Absent()])
    finally:
        ENGINES.pop("off-by-one")
    c = result.comparison("off-by-one")
    assert c.layers == ("softmax",) and c.mismatches == 1 and c.first_mismatches[0].vector == len(x_int) - 1
    assert result.skipped == (("absent", "needs a chip nobody has"),) and not result.bit_exact
    assert not verify(tmp_path, x_int, engines=[_Absent()]).bit_exact  # nothing ran, nothing verified


def test_compiler_errors_carry_the_compiler_output(model, tmp_path, monkeypatch):
    graph, x_int = model
    export_c(graph, tmp_path)
    with open(tmp_path / "model.c", "a") as f:
        f.write("\nstatic int unused_by_anyone;\n")
    with pytest.raises(ToolchainError, match="unused_by_anyone"):
        HostCEngine().run(tmp_path, x_int)
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    with pytest.raises(ToolchainError, match="no-such-compiler-xyz"):
        find_cc()


# -- measure ------------------------------------------------------------------------------------


def test_measured_sizes_count_weights_in_flash_and_buffers_in_ram(tmp_path):
    rng = np.random.default_rng(5)
    graph, _ = calibrated_mlp("sized", [300, 40, 10], rng, sparsity=0.9)
    dense = export_c(graph, tmp_path / "dense", "dense")
    csr = export_c(graph, tmp_path / "csr", "csr")
    size_dense, size_csr = measure_export(tmp_path / "dense"), measure_export(tmp_path / "csr")
    for export, size in ((dense, size_dense), (csr, size_csr)):
        assert size.flash == size.text + size.rodata + size.data and size.ram == size.data + size.bss
        assert export.weight_bytes + export.bias_bytes <= size.rodata < export.weight_bytes + export.bias_bytes + 256
        activation_bytes = json.loads((export.out_dir / "export.json").read_text())["activation_bytes"]
        # The ping-pong buffers (x86-64 aligns arrays of 32 bytes or more to 32), no trace buffer.
        assert activation_bytes <= size.bss < activation_bytes + 64
        assert 0 < size.text < 2048
    assert csr.weight_bytes < dense.weight_bytes / 3 and size_csr.flash < size_dense.flash / 2
    obj = compile_object(tmp_path / "csr" / "model.c", tmp_path / "model.o", [tmp_path / "csr"], SIZE_DEFINES)
    assert section_sizes(obj)["rodata"] == size_csr.rodata
