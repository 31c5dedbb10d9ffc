"""hwprune resources: the estimate, the part comparison, verify --json, and (with yosys and
da4ml) netlists that must compute the model."""

import json

import numpy as np
import pytest

from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, ReLU
from hwprune.pipeline import ExportOptions, export_model


def _export(tmp_path, name, target, shape=(6, 5, 3), bits=4, seed=0):
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = shape
    g = Graph.chain("tiny", (n_in,), (Dense("fc1", rng.normal(size=(n_hidden, n_in)), rng.normal(size=n_hidden) * 0.1),
                                ReLU("relu1"), Dense("fc2", rng.normal(size=(n_out, n_hidden)), np.zeros(n_out))))
    x = rng.normal(size=(48, n_in))
    return export_model(g, tmp_path / name, x, ExportOptions(weight_bits=bits, activation_bits=bits, target=target))


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("res"), "small", "xc7z020")


def test_resources_json_per_layer_and_totals(cli, small_export):
    _, out, _ = cli("resources", small_export, "--json", check_exit=0)
    result = json.loads(out)
    assert [l["name"] for l in result["layers"]] == ["fc1", "relu1", "fc2"]
    for key in ("dsp", "lut", "ff", "bram_18k", "bram_36k", "latency_cycles", "ii"):
        assert result[key] == sum(l[key] for l in result["layers"]) or key in ("bram_36k", "ii")
    assert result["part"]["name"] == "xc7z020" and result["part"]["fits"]
    _, out, _ = cli("resources", small_export, "--strategy", "resource", "--reuse-factor", "4", "--json", check_exit=0)
    assert json.loads(out)["ii"] == 4


def test_unknown_part_and_bad_options_exit_2(cli, small_export):
    code, out, err = cli("resources", small_export, "--part", "xc9nope")
    assert code == 2 and out == "" and "unknown target 'xc9nope'" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("resources", small_export, "--part", "stm32l4r5")
    assert code == 2 and "not an FPGA part" in err
    code, _, err = cli("resources", small_export, "--strategy", "da", "--reuse-factor", "2")
    assert code == 2 and "reuse-factor" in err


def test_too_big_for_the_part_warns_with_figures(cli, tmp_path):
    big = _export(tmp_path, "big", "xcvu9p", shape=(64, 128, 64), bits=16)
    code, out, err = cli("resources", big, "--part", "xc7a35t", "--json")
    assert code == 0
    part = json.loads(out)["part"]
    assert not part["fits"]
    dsp = part["resources"]["dsp"]["used"]
    assert f"does not fit xc7a35t: DSP {dsp:,} of 90" in err
    # verify --json carries the figures for an FPGA target (the export's xcvu9p).
    _, out, _ = cli("verify", big, "--json", check_exit=0)
    report = json.loads(out)
    assert report["dsp"] == json.loads(cli("resources", big, "--json")[1])["dsp"]
    for key in ("dsp", "lut", "ff", "bram", "latency_cycles", "ii"):
        assert isinstance(report[key], int)
    assert report["fpga"]["part"]["name"] == "xcvu9p" and report["fpga"]["strategy"] == "latency"


def test_sparsity_sweep_plot(cli, small_export, tmp_path):
    plot = tmp_path / "sweep.png"
    _, out, _ = cli("resources", small_export, "--sweep-sparsity", "--plot", plot, "--json", check_exit=0)
    rows = json.loads(out)["sparsity_sweep"]["rows"]
    assert [r["sparsity"] for r in rows][0] == 0.0 and rows[-1]["sparsity"] == 0.95
    assert rows[-1]["lut"] < rows[0]["lut"] and rows[-1]["nonzero_weights"] < rows[0]["nonzero_weights"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _synthesis_unavailable():
    from hwprune.fpga.synth import unavailable_reason

    return unavailable_reason()


@pytest.mark.skipif(_synthesis_unavailable() is not None, reason=str(_synthesis_unavailable()))
def test_synthesize_checks_every_netlist(cli, small_export):
    _, out, _ = cli("resources", small_export, "--strategy", "da", "--synthesize", "--json", check_exit=0)
    result = json.loads(out)
    syn = result["synthesized"]
    assert syn["bit_exact"] and syn["vectors"] == 48
    assert [l["name"] for l in syn["layers"]] == ["fc1", "relu1", "fc2"]
    for layer in syn["layers"]:
        assert layer["lut"] > 0 and layer["bit_exact"]
    assert syn["layers"][0]["carry"] > 0


@pytest.mark.skipif(_synthesis_unavailable() is not None, reason=str(_synthesis_unavailable()))
def test_a_netlist_that_does_not_compute_the_layer_is_an_error(small_export, tmp_path):
    from dataclasses import replace

    from hwprune import reference
    from hwprune.errors import VerificationError
    from hwprune.fpga import da
    from hwprune.fpga.synth import check_netlist, synthesize_logic
    from hwprune.ir.io import load_graph

    graph = load_graph(small_export)
    layer = graph.layers[2]
    (in_t,) = graph.input_types(layer)
    with np.load(small_export / "vectors.npz") as v:
        x_int = v["x_int"]
    trace = reference.run(graph, x_int, trace=True)
    logic = da.layer_logic(layer, (5,), in_t)
    netlist = synthesize_logic(logic, layer.name, "xc7", tmp_path)
    check_netlist(netlist, logic, trace[1][1], in_t, trace[2][1], layer.result_t, "fc2")  # the true netlist passes
    # Flip one bit of every LUT's truth table: the netlist no longer computes the layer.
    broken = []
    for kind, params, conns, dirs in netlist.cells:
        if kind.startswith("LUT") and kind != "LUT1":
            init = params["INIT"]
            params = {**params, "INIT": init[:-1] + ("1" if init[-1] == "0" else "0")}
        broken.append((kind, params, conns, dirs))
    with pytest.raises(VerificationError, match="differs from the integer reference"):
        check_netlist(replace(netlist, cells=tuple(broken)), logic, trace[1][1], in_t, trace[2][1],
                      layer.result_t, "fc2")


def test_the_default_sweep_plot_joins_the_exports_manifest(cli, tmp_path):
    folder = _export(tmp_path, "e", "xc7z020")
    cli("resources", folder, "--sweep-sparsity", check_exit=0)
    assert (folder / "resources_sweep.png").stat().st_size > 1000
    cli("verify", folder, check_exit=0)  # still a complete export: the plot is listed
    cli("export", folder, "--out", folder, "--force", check_exit=2)  # (it is the input: refused for that reason)
    copy = tmp_path / "copy"
    cli("export", folder, "--out", copy, check_exit=0)
    cli("resources", copy, "--sweep-sparsity", check_exit=0)
    cli("export", folder, "--out", copy, "--force", check_exit=0)  # the plot is hwprune's: replaced
