"""csr8 (uint8 columns, a uint8 count a row, 255 after the last): eligibility, the
arrays, bit-exact on the host and on Cortex-M0+, M4 (SMLAD path), M7 and M33 in the emulator,
on the fast and the general arithmetic path, and fewer instructions than csr on the M4."""

from __future__ import annotations

import numpy as np
import pytest

from hwprune.backends.c import export_c
from hwprune.backends.c.formats import FormatNotApplicable, candidates, choose_formats, encode_matrix
from hwprune.backends.c.plan import plan_model
from hwprune.harness import verify
from hwprune.harness.mcu import McuEngine, measure_mcu
from hwprune.ir import Dense, Graph, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

from codegen_graphs import random_inputs, random_typed_graph
from test_export_c import assert_bit_exact

TARGETS = {"m0plus": "mspm0g3507", "m4": "stm32l4r5", "m7": "pic32czca90", "m33": "nrf54l15"}


def _zeros(n_out):
    return np.zeros(n_out, dtype=np.int64)


def test_arrays_are_bytes_with_the_end_marker():
    w = np.array([[0, 3, 0, -2, 5], [0, 0, 0, 0, 0], [7, 0, 0, 0, 0]])
    s = encode_matrix("fc", w, _zeros(3), "int8_t", "csr8")
    assert s.array("values").data.tolist() == [3, -2, 5, 7]
    assert s.array("columns").data.tolist() == [1, 3, 4, 0]
    assert s.array("counts").data.tolist() == [3, 0, 1, 255]
    assert {a.c_type for a in s.arrays if a.name != "values"} == {"uint8_t"}
    assert (s.value_bytes, s.index_bytes, s.pointer_bytes) == (4, 4, 4)


def test_ineligible_layers_are_not_encoded_and_auto_skips_them(rng):
    w = rng.integers(1, 100, size=(2, 257))
    w[:, ::2] = 0
    with pytest.raises(FormatNotApplicable, match="257 inputs"):
        encode_matrix("fc", w, _zeros(2), "int8_t", "csr8")
    with pytest.raises(FormatNotApplicable, match="a row holds 255"):  # 255 is the end marker
        encode_matrix("fc", rng.integers(1, 100, size=(2, 255)), _zeros(2), "int8_t", "csr8")
    assert encode_matrix("fc", rng.integers(1, 100, size=(2, 254)), _zeros(2), "int8_t", "csr8").nonzero_weights == 508
    wide = _graph(rng, [257, 3], 0.5)
    assert "csr8" not in {s.format for s in candidates(wide.weighted_layers()[0])}
    assert "csr8" in {s.format for s in candidates(_graph(rng, [256, 3], 0.5).weighted_layers()[0])}


def _graph(rng, sizes, sparsity, empty_rows=0):
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
        w[rng.random(w.shape) < sparsity] = 0
        w[:empty_rows] = 0
        layers.append(Dense(f"fc{k + 1}", w, rng.normal(size=n_out) * 0.3))
        if k < len(sizes) - 2:
            layers.append(ReLU(f"relu{k + 1}"))
    float_graph = Graph.chain("c8", (sizes[0],), tuple(layers))
    return calibrate(float_graph, rng.uniform(-1, 1, (64, sizes[0])), QuantConfig(8, 8))


@pytest.mark.parametrize("core", sorted(TARGETS))
def test_bit_exact_on_cortex_m_with_every_row_remainder(core, tmp_path):
    """Rows of 0 to 11 nonzeros (every remainder of 4), empty rows, signed and ReLU inputs."""
    graph = _graph(np.random.default_rng(8), [23, 19, 12, 5], 0.6, empty_rows=2)
    counts = [np.count_nonzero(s.array("values").data) for s in choose_formats(graph, "csr8")]
    assert all(counts)
    export_c(graph, tmp_path, "csr8")
    plan = plan_model(graph, choose_formats(graph, "csr8"))
    assert all(s.arithmetic.fast for s in plan.steps if s.storage is not None)
    if core == "m4":
        assert "__smlad" in (tmp_path / "model.c").read_text()
    result = verify(tmp_path, random_inputs(graph, np.random.default_rng(1), 10), [McuEngine(target=TARGETS[core])])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
def test_general_path_is_bit_exact_on_the_m4_and_the_host(tmp_path, opt):
    graph = random_typed_graph("general8", [9, 13, 6, 8], 5, sparsity=0.4, width_range=(2, 12))
    plan = plan_model(graph, choose_formats(graph, "csr8"))
    assert any(not s.arithmetic.fast for s in plan.steps if s.storage is not None)
    x = random_inputs(graph, np.random.default_rng(5), 8)
    assert_bit_exact(graph, x, tmp_path / "host", "csr8")
    export_c(graph, tmp_path / "mcu", "csr8")
    result = verify(tmp_path / "mcu", x, [McuEngine(target="stm32l4r5", opt=opt)])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


def test_fewer_instructions_than_csr_on_the_m4(tmp_path):
    rng = np.random.default_rng(2)
    graph = _graph(rng, [64, 48], 0.85)
    x = random_inputs(graph, rng, 3)
    counts = {}
    for fmt in ("csr", "csr8"):
        export_c(graph, tmp_path / fmt, fmt)
        counts[fmt] = measure_mcu(tmp_path / fmt, "stm32l4r5", x).layers[0].instructions
    assert counts["csr8"] < 0.85 * counts["csr"], counts


def test_compiles_clean_under_the_strict_warnings(tmp_path):
    from hwprune.harness.build import compile_object, find_cc
    from test_firmware_helpers import STRICT

    compiler = find_cc()
    for name, graph in (("fast", _graph(np.random.default_rng(4), [12, 9, 4], 0.5)),
                        ("general", random_typed_graph("g8", [9, 13, 6], 5, sparsity=0.4, width_range=(2, 12)))):
        export_c(graph, tmp_path / name, "csr8")
        compile_object(tmp_path / name / "model.c", tmp_path / f"{name}.o", [tmp_path / name], flags=STRICT,
                       compiler=compiler)  # raises on any warning


def test_optimize_speed_takes_csr8_when_unrolled_does_not_fit(rng):
    graph = _graph(rng, [64, 48], 0.85)
    layer = graph.weighted_layers()[0]
    sizes = {s.format: s.weight_bytes for s in candidates(layer)}
    assert sizes["csr8"] < sizes["csr"] and sizes["csr8"] < sizes["unrolled"]
    assert choose_formats(graph, "auto", "speed", "cortex-m4")[0].format == "unrolled"
    within = choose_formats(graph, "auto", "speed", "cortex-m4", flash_budget=sizes["csr8"])
    assert within[0].format == "csr8"
    assert choose_formats(graph, "auto", "size")[0].format != "csr8"  # rice or rel: fewer bytes
