"""The energy proxy: its table, its scaling between widths, and the facts it must respect."""

import numpy as np
import pytest

from hwprune.energy import (
    RULES, dense_float_graph, export_proxy, float_proxy, load_table, report_section,
)
from hwprune.errors import HwpruneError
from hwprune.ir import Dense, Graph, ReLU
from hwprune.paths import costs_dir
from hwprune.quant.calibrate import QuantConfig, calibrate


def _float_mlp(rng, sizes=(32, 48, 10), sparsity=0.5) -> tuple[Graph, np.ndarray]:
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
        w[rng.random(w.shape) < sparsity] = 0.0
        layers.append(Dense(f"fc{k}", w, rng.normal(size=n_out) * 0.1))
        if k < len(sizes) - 2:
            layers.append(ReLU(f"relu{k}"))
    return Graph.chain("net", (sizes[0],), layers), rng.normal(size=(64, sizes[0]))


def test_table_holds_horowitz_figures_each_with_its_source():
    import tomllib

    data = tomllib.loads((costs_dir() / "energy_45nm.toml").read_text())
    for entry in (*data["operation"], *data["memory"]):
        assert "Horowitz, ISSCC 2014" in entry["source"], entry
    figures = {(e["name"], e["bits"]): e["pj"] for e in data["operation"]}
    assert figures == {("int_add", 8): 0.03, ("int_add", 32): 0.1, ("int_mult", 8): 0.2, ("int_mult", 32): 3.1,
                       ("float_add", 32): 0.9, ("float_mult", 32): 3.7}
    memory = {m["name"]: m["pj_per_64_bits"] for m in data["memory"]}
    assert memory["8 KB SRAM"] == 10 and memory["1 MB SRAM"] == 100 and memory["DRAM"] == 1300


def test_scaling_between_widths():
    t = load_table()
    assert t.int_add(8) == 0.03 and t.int_add(32) == pytest.approx(0.1)
    assert t.int_add(4) == pytest.approx(0.015) and t.int_add(64) == pytest.approx(0.2)  # proportional outside
    assert t.int_mult(8, 8) == 0.2 and t.int_mult(32, 32) == pytest.approx(3.1)
    assert t.int_mult(4, 8) == pytest.approx(0.1)  # the product of the widths: half the cells of 8x8
    widths = [t.int_mult(b, b) for b in range(1, 40)]
    assert all(a < b for a, b in zip(widths, widths[1:]))
    assert [t.level(n).name for n in (0, 8192, 8193, 40_000, 2_000_000)] == [
        "8 KB SRAM", "8 KB SRAM", "32 KB SRAM", "1 MB SRAM", "DRAM"]


def test_fewer_nonzeros_cost_less_at_equal_format(rng):
    graph, x = _float_mlp(rng)
    q = calibrate(graph, x, QuantConfig(8, 8))
    sparser = q.with_layers([l.with_(weight=np.where(np.abs(l.weight) < np.quantile(np.abs(l.weight), 0.8), 0.0,
                                                     l.weight)) if l.kind == "dense" else l for l in q.layers])
    assert sparser.nonzero_weights < q.nonzero_weights
    csr = {l.name: "csr" for l in q.dense_layers()}
    more, fewer = export_proxy(q, csr), export_proxy(sparser, csr)
    for part in ("total_pj", "compute_pj", "weight_read_pj", "activation_pj"):
        assert fewer.total(part) < more.total(part), part
    dense = {l.name: "dense" for l in q.dense_layers()}
    assert export_proxy(sparser, dense).total() <= export_proxy(q, dense).total()  # dense multiplies zeros too
    assert float_proxy(graph, sparse=True).total() < float_proxy(dense_float_graph(graph)).total()


def test_fewer_bits_cost_less(rng):
    graph, x = _float_mlp(rng)
    totals = []
    for bits in ((4, 8), (8, 8), (16, 16)):
        q = calibrate(graph, x, QuantConfig(*bits))
        totals.append(export_proxy(q, {l.name: "csr" for l in q.dense_layers()}))
    assert totals[0].total("compute_pj") < totals[1].total("compute_pj") < totals[2].total("compute_pj")
    assert totals[0].total() < totals[1].total() < totals[2].total()
    assert totals[2].total() < float_proxy(graph, sparse=True).total()


def test_report_section_parts_add_up_and_name_the_baseline(rng):
    graph, x = _float_mlp(rng, sizes=(100, 120, 10), sparsity=0.9)
    q = calibrate(graph, x, QuantConfig(8, 8))
    section = report_section(q, {l.name: "csr" for l in q.dense_layers()})
    for proxy in (section, section["float32_dense"]):
        assert proxy["total"] == pytest.approx(proxy["compute"] + proxy["weight_reads"] + proxy["activation_traffic"])
        assert proxy["total"] == pytest.approx(sum(l["total"] for l in proxy["layers"]))
    assert section["float32_dense"]["weight_memory"] == "1 MB SRAM"  # 48 KB of float32 weights
    assert section["weight_memory"] == "8 KB SRAM"
    assert section["float32_dense"]["layers"][0]["mults"] == 100 * 120
    assert section["saving_vs_float32_dense"] > 10 and "not a measurement" in section["note"]
    # Weight reads dominate the dense model: the saving is at least the ratio of bytes read.
    base = section["float32_dense"]
    assert base["weight_reads"] > base["compute"] + base["activation_traffic"]
    assert section["saving_vs_float32_dense"] >= base["weight_bytes"] / section["weight_bytes"]


def test_a_layer_kind_without_a_rule_is_named():
    assert {"dense", "relu", "flatten"} <= set(RULES)

    class Odd(ReLU):
        kind = "odd"

    g = Graph.chain("g", (3,), [Odd("weird")])
    with pytest.raises(HwpruneError, match="'weird': the energy proxy has no rule for 'odd'"):
        float_proxy(g)


def test_convolutions_and_pooling_are_counted_per_output_position(rng):
    from hwprune.ir import Flatten
    from hwprune.ir.spatial import Conv2D, MaxPool2D

    w = rng.normal(size=(4, 3, 3, 2))
    w[rng.random(w.shape) < 0.7] = 0.0
    g = Graph.chain("cnn", (8, 8, 2), [Conv2D("conv", w, rng.normal(size=4)), ReLU("relu"),
                                 MaxPool2D("pool", pool_size=(2, 2)), Flatten("flat"),
                                 Dense("fc", rng.normal(size=(3, 36)), np.zeros(3))])
    q = calibrate(g, rng.normal(size=(32, 8, 8, 2)), QuantConfig(8, 8))
    conv = q.layers[0]
    dense, csr = (export_proxy(q, {"conv": f, "fc": f}) for f in ("dense", "csr"))
    assert dense.layers[0].work.mults == conv.mac_count((8, 8, 2)) == 6 * 6 * w.size  # valid padding
    assert csr.layers[0].work.mults == conv.mac_count((8, 8, 2), nonzero_only=True) < dense.layers[0].work.mults
    # Each of the 36 output positions reads the stored filters once; the memory level sees them once.
    assert dense.layers[0].work.weight_bytes == 36 * dense.layers[0].work.stored_bytes
    assert dense.layers[2].work.activation_bytes_read == 3 * 3 * 4 * 4  # every output reads its 2x2 window
    assert csr.total() < dense.total() < float_proxy(dense_float_graph(g)).total()


def test_merge_layers_count_their_operations_and_every_operand():
    from hwprune.ir import Add, Concatenate, GraphInput, Multiply

    rng = np.random.default_rng(2)
    layers = (Dense("a", rng.normal(size=(8, 6)), None, inputs=("input",)), ReLU("r", inputs=("a",)),
              Add("add", inputs=("a", "r")), Multiply("mul", inputs=("add", "r")),
              Concatenate("cat", inputs=("mul", "a", "r")))
    graph = Graph("dag", (GraphInput("input", (6,)),), layers)
    q = calibrate(graph, rng.normal(size=(64, 6)), QuantConfig(8, 8))
    rows = {row["name"]: row for row in export_proxy(q, {}).to_json()["layers"]}
    assert rows["add"]["adds"] == 8 and rows["add"]["mults"] == 0
    assert rows["mul"]["mults"] == 8 and rows["mul"]["mult_bits"] == [q.type_of("add").width, q.type_of("r").width]
    assert rows["cat"]["activation_bytes"] == 2 * 24  # 24 one-byte elements read, 24 written
    assert float_proxy(graph).total() > export_proxy(q, {}).total()
