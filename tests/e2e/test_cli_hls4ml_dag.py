"""A graph with branches through ``hwprune export --backend hls4ml`` -> ``hwprune verify``
(hls4ml's C simulation against the integer reference), ``resources`` and ``report``.

Two projects, compiled once each: io_parallel (Merge, pairwise Concatenate, hls4ml's ReLU1,
hwprune's clip kernel for [-1, 1], a global average) and io_stream (hls4ml adds Clone layers where a tensor
has several readers; both clips in hwprune's kernel).
"""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from hwprune import reference  # noqa: E402
from hwprune.ir.io import load_graph, save_graph  # noqa: E402
from hwprune.pipeline import read_vectors  # noqa: E402
from hwprune.reference_merge import clip_bounds  # noqa: E402
from tests.codegen.codegen_graphs import small_dag  # noqa: E402

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(scope="module")
def exports(tmp_path_factory, cli):
    root = tmp_path_factory.mktemp("hls4ml-dag")
    out = {}
    for io_type in ("parallel", "stream"):
        rng = np.random.default_rng(0)
        save_graph(small_dag(rng), root / f"model_{io_type}")
        np.save(root / "calibration.npy", rng.normal(size=(30, 4, 3, 2)))
        out[io_type] = root / f"export_{io_type}"
        cli("export", root / f"model_{io_type}", "--calibration", root / "calibration.npy", "--out", out[io_type],
            "--backend", "hls4ml", "--io-type", io_type, "--weight-bits", "8", "--activation-bits", "8",
            check_exit=0)
    return out


@needs_gxx
@pytest.mark.parametrize("io_type", ["parallel", "stream"])
def test_a_graph_with_branches_is_bit_exact_in_c_simulation(exports, cli, io_type):
    code, stdout, err = cli("verify", exports[io_type], "--json")
    assert code == 0, err
    report = json.loads(stdout)
    engine = report["engines"]["hls4ml"]
    assert engine["available"] and engine["bit_exact"] and engine["mismatches"] == 0, engine
    graph = load_graph(exports[io_type])
    add_types = graph.input_types("add")
    assert add_types[0] != add_types[1] and add_types[0].signed != add_types[1].signed  # exact alignment matters
    assert len(set(graph.input_types("cat"))) > 1
    project = json.loads((exports[io_type] / "hls4ml" / "hwprune_hls4ml.json").read_text())
    assert {r["name"] for r in project["layers"] if r["in_project"]} >= {"add", "cat", "mul", "r1", "ht", "gap"}
    top = (exports[io_type] / "hls4ml" / "firmware" / "dag.cpp").read_text()
    assert top.count("nnet::clip<") == (1 if io_type == "parallel" else 2)
    assert ("nnet::relu1<" in top) == (io_type == "parallel")
    # the clamps act on the test vectors: both bounds of [-1, 1] are reached
    trace = dict(reference.run(graph, read_vectors(exports[io_type], graph)["x_int"], trace=True))
    lo, hi = clip_bounds(graph.layer("ht"), graph.input_types("ht")[0])
    assert (trace["ht"] == lo).any() and (trace["ht"] == hi).any()


def test_resources_and_report_of_a_graph_with_branches(exports, cli):
    code, stdout, err = cli("resources", exports["parallel"], "--json")
    assert code == 0, err
    result = json.loads(stdout)
    estimate = result["estimate"] if "estimate" in result else result
    rows = {row["name"]: row for row in estimate["layers"]}
    assert {"add", "mul", "cat", "r1"} <= set(rows)
    assert rows["add"]["lut"] > 0 and rows["r1"]["lut"] > 0
    # the branches run side by side: the latency is the longest path, less than the sum
    assert estimate["latency_cycles"] < sum(row["latency_cycles"] for row in rows.values())
    code, _, err = cli("report", exports["parallel"])
    assert code == 0, err
    report = json.loads((exports["parallel"] / "report.json").read_text())
    energy = {row["name"]: row for row in report["energy_proxy_pj"]["layers"]}
    assert energy["mul"]["mults"] == 6 and energy["add"]["adds"] == 36
    markdown = (exports["parallel"] / "report.md").read_text()
    assert "| add | add <- r1, c0 |" in markdown and "](report_graph.png)" in markdown
    assert (exports["parallel"] / "report_graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = cli("verify", exports["parallel"])  # the drawing is listed in the manifest like every file
    assert code == 0, err
