"""``hwprune report`` on an int8 export folder: the figures of report.json and report.md are
the export's own (its graph, its C, its export.json), and the folder stays verifiable."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.backends.c_int8_plan import stored_dense
from hwprune.ir.io import load_graph
from hwprune.manifest import check

pytest.importorskip("tflite_micro")


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "hwprune", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A pruned MLP exported with --quant tflite-int8, then reported."""
    folder = tmp_path_factory.mktemp("report_int8")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5)).eval()
    torch.save(model, folder / "mlp.pt")
    np.save(folder / "x.npy", np.random.default_rng(2).normal(size=(48, 16)))
    out = folder / "out"
    code, _, err = _cli("export", folder / "mlp.pt", "--quant", "tflite-int8", "--calibration", folder / "x.npy",
                        "--sparsity", "0.9", "--out", out)
    assert code == 0, err
    exported = json.loads((out / "report.json").read_text())
    code, _, err = _cli("report", out)
    assert code == 0, err
    return out, exported


def test_layer_figures_are_the_exports(reported):
    out, exported = reported
    report = json.loads((out / "report.json").read_text())
    meta = json.loads((out / "export.json").read_text())
    graph = load_graph(out)
    rows = {r["name"]: r for r in report["layers"]}
    assert list(rows) == [layer.name for layer in graph.layers]
    for layer in graph.weighted_layers():
        row = rows[layer.name]
        assert (row["total_weights"], row["nonzero_weights"]) == (layer.weight.size, layer.nonzero_weights)
        assert row["format"] == ("dense" if stored_dense(layer) else "sparse")
        assert row["macs"] == graph.layer_macs(layer)
    # the per-layer C bytes add up to what the export counted in its model_int8.c
    assert sum(r["c_bytes"] for r in report["layers"] if r["weighted"]) == meta["c_weight_bytes"]
    assert {r["format"] for r in report["layers"] if r["weighted"]} == {"dense", "sparse"}  # both storages shown
    # each layer's C kernel, as the C calls it (the model's C written from the same graph)
    source = (out / "c" / "model_int8.c").read_text()
    assert all(r["kernel"] == "copy" or f"{r['kernel'].strip('()')}(" in source for r in report["layers"])
    for key in ("macs", "nonzero_macs", "total_weights", "nonzero_weights", "c_weight_bytes", "fidelity"):
        assert report[key] == exported[key], key
    assert report["bit_exact"] is True and {"tflm", "host"} <= set(report["engines"])
    markdown = (out / "report.md").read_text()
    for layer in graph.weighted_layers():
        row = rows[layer.name]
        assert (f"| {layer.name} | int8_dense | {row['format']} | {layer.nonzero_weights} / {layer.weight.size} | "
                f"{row['c_bytes']} | {graph.layer_macs(layer, nonzero_only=True)} / {graph.layer_macs(layer)} |"
                ) in markdown
    assert f"{meta['c_weight_bytes']} B" in markdown and "**bit-exact**" in markdown
    check(out)  # the manifest was rewritten with the new report files


def test_memory_and_cycles(reported):
    out, _ = reported
    report = json.loads((out / "report.json").read_text())
    host = report["host_size"]
    assert host["flash"] >= report["c_weight_bytes"]  # the constant arrays are in the object's rodata
    markdown = (out / "report.md").read_text()
    assert f"flash {host['flash']} B, RAM {host['ram']} B" in markdown
    if report["mcu"] is None:
        pytest.skip(report["skipped"]["mcu"])
    mcu = report["mcu"]
    assert report["engines"]["mcu"]["bit_exact"] and mcu["cycles"] > 0 and mcu["flash_bytes"] > host["flash"] // 2
    assert (report["flash_bytes"], report["ram_bytes"]) == (mcu["flash_bytes"],
                                                            mcu["static_ram_bytes"] + mcu["stack_bytes"])
    assert f"{mcu['cycles']:.0f} cycles" in markdown


def test_a_changed_c_source_is_refused_and_nothing_written(reported, tmp_path):
    """The manifest hashed again over an edited model_int8.c: the regenerated C differs."""
    import shutil

    from hwprune.manifest import replace_files

    out, _ = reported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    edited = tmp_path / "edited"
    (edited / "c").mkdir(parents=True)
    (edited / "c" / "model_int8.c").write_text((out / "c" / "model_int8.c").read_text() + "int extra;\n")
    replace_files(copy, edited)
    before = (copy / "report.md").read_bytes()
    code, _, err = _cli("report", copy)
    assert code == 2 and "model_int8.c" in err and len(err.strip().splitlines()) == 1, err
    assert (copy / "report.md").read_bytes() == before
    code, _, err = _cli("verify", copy)  # verify compiles the C: it must refuse the edit first
    assert code == 2 and "model_int8.c" in err and len(err.strip().splitlines()) == 1, err
    code, out_text, err = _cli("verify", copy, "--trust-export")  # the user's explicit choice: runs, and warns
    assert code == 0 and "bit-exact" in out_text and "--trust-export" in err, (out_text, err)
    code, _, err = _cli("report", out, "--target", "no_such_chip")
    assert code == 2 and "no_such_chip" in err and len(err.strip().splitlines()) == 1, err
