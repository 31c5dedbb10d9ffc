"""Dead-channel removal on int8 models: the exported (channel-removed) graph's host C and
Cortex-M4 firmware equal the ORIGINAL graph's reference and TFLite Micro on the original file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.harness.host_int8 import run_host
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.compare import compare
from hwprune.prune.dead_channels import remove_dead_channels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from dead_channel_graphs import int8_cnn, int8_inputs  # noqa: E402

pytest.importorskip("tflite_micro")
from hwprune.harness.tflm import TflmEngine  # noqa: E402


def _kept_channels(trace, removed):
    """A full trace with the removed channels of each tensor taken out."""
    return [(name, np.delete(values, list(removed.get(name, ())), axis=-1)) for name, values in trace]


def test_vww_without_dead_channels_equals_tflm_on_every_kept_channel(tmp_path, data_dir):
    path = data_dir / "vww_96_int8.tflite"
    graph = read_tflite(path, "vww").graph
    reduced, report = remove_dead_channels(graph)
    # every all-zero filter of a pointwise conv is gone (all of them are read by padded depthwise
    # convs or the classifier, whose constants fold or whose channels nobody reads)
    for layer in graph.weighted_layers():
        dead = np.flatnonzero(~np.any(layer.filter_matrix != 0, axis=1))
        assert set(dead.tolist()) <= set(report.removed.get(layer.name, ())), layer.name
    assert reduced.macs < 0.55 * graph.macs and reduced.total_weights < 0.2 * graph.total_weights
    x = np.random.default_rng(2).integers(-128, 128, size=(2, *graph.input_shape))
    x[0] = -128
    tflm = TflmEngine(path).run(graph, x)
    assert np.array_equal(tflm.outputs, reference.run(graph, x))
    expected = reference.run(reduced, x, trace=True)
    result = compare(expected, _kept_channels(tflm.trace, report.removed), "tflm")
    assert result.bit_exact and len(result.layers) == len(graph.layers), result.report()
    write_int8_c(reduced, tmp_path / "c")
    host_trace = run_host(reduced, tmp_path / "c", x, tmp_path)
    host = compare(expected, host_trace, "host")
    assert host.bit_exact, host.report()
    assert np.array_equal(dict(host_trace)[reduced.output], tflm.outputs)


def test_small_model_host_c_and_m4_equal_the_original_reference(tmp_path):
    """A constant that the padding changes stays, the others go; host C and the M4 firmware of
    what is left equal the original graph's reference."""
    from hwprune.errors import ToolchainError
    from hwprune.harness.cross import find_cross_cc
    from hwprune.harness.mcu_int8 import run_mcu

    graph = int8_cnn(np.random.default_rng(5))
    reduced, report = remove_dead_channels(graph)
    assert report.filters_removed and any("padding" in why for *_, why in report.kept)
    x = int8_inputs(graph, np.random.default_rng(6), n=6)
    want = reference.run(graph, x)
    write_int8_c(reduced, tmp_path / "c")
    host = run_host(reduced, tmp_path / "c", x, tmp_path)
    assert np.array_equal(host[-1][1], want)
    try:
        find_cross_cc()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    run = run_mcu(reduced, tmp_path / "c", x[:2], tmp_path)
    assert np.array_equal(run.outputs, want[:2])


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "hwprune", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def test_export_removes_dead_channels_and_tflm_verifies_the_folder(tmp_path):
    from hwprune.backends.tflite_file import write_tflite
    from hwprune.ir.io import load_graph

    model = tmp_path / "cnn.tflite"
    model.write_bytes(write_tflite(int8_cnn(np.random.default_rng(5))))
    graph = read_tflite(model).graph  # the file's operator names
    out = tmp_path / "out"
    code, _, err = _cli("export", model, "--out", out)
    assert code == 0, err
    assert "dead filters removed" in err and "tflm and host bit-exact" in err
    record = json.loads((out / "export.json").read_text())["dead_channels"]
    exported = load_graph(out)
    assert exported.macs == record["macs_after"] < record["macs_before"] == graph.macs
    for name, channels in record["removed"].items():
        assert exported.shape_of(name)[-1] == graph.shape_of(name)[-1] - len(channels)
    code, stdout, err = _cli("verify", out, "--engine", "tflm", "--engine", "host")
    assert code == 0, err
    assert "tflm: bit-exact" in stdout and "(8 layers compared)" in stdout
    code, _, err = _cli("report", out)
    assert code == 0, err
    assert json.loads((out / "report.json").read_text())["dead_channels"] == record
    assert (f"{record['filters_removed']} filters or units; MACs {record['macs_before']} -> {record['macs_after']}"
            in (out / "report.md").read_text())
    vectors = np.load(out / "vectors.npz")
    assert np.array_equal(vectors["y_int"], reference.run(graph, vectors["x_int"].astype(np.int64)))
    from hwprune.pipeline import ExportOptions, export_model

    kept = export_model(model, tmp_path / "kept", options=ExportOptions(remove_dead_neurons=False))
    assert "dead_channels" not in json.loads((kept / "export.json").read_text())
    kept_graph = load_graph(kept)
    assert [kept_graph.shape_of(layer.name) for layer in graph.layers] == [graph.shape_of(layer.name)
                                                                          for layer in graph.layers]
