"""``hwprune prune`` on graphs: MLPerf Tiny's ResNet-8 (16/32/64 filters, 1x1 conv shortcuts,
32x32x3 inputs) as a .pt2 program, pruned to 80 % by global magnitude and by filters with a
short fine-tuning on scikit-learn's digits (8x8 scaled to 32x32, three channels), exported
bit-exact on the host and the Cortex-M4 emulator; the filter-pruned export is smaller on
both sides of every Add. Other formats (ONNX, a pickled module with branches) prune into
graph folders; bad input is one line, exit 2, nothing written."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hwprune.frontends.torch import from_torch
from hwprune.ir.io import load_graph, save_graph
from hwprune.pipeline import load_model
from hwprune.quant.calibrate import calibrate

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the model classes, importable by name
from torch_dag_models import ResNet8, SkipMLP, TensorIf, randomize_batchnorm, hwprune_cli as hwprune  # noqa: E402



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune_graphs")
    torch.manual_seed(0)
    resnet = randomize_batchnorm(ResNet8())  # MLPerf Tiny's sizes: 16/32/64 filters on 32x32x3
    torch.export.save(torch.export.export(resnet, (torch.randn(2, 3, 32, 32),)), tmp / "resnet8.pt2")
    digits = load_digits()
    images = np.kron(digits.images[:128] / 16.0, np.ones((4, 4)))  # 8x8 -> 32x32
    x = np.repeat(images[:, None], 3, axis=1).astype(np.float32)
    np.savez(tmp / "digits32.npz", x=x, y=digits.target[:128])
    np.save(tmp / "calibration.npy", x[:3])
    skip = randomize_batchnorm(SkipMLP())
    torch.save(skip, tmp / "skip_mlp.pt")
    torch.onnx.export(skip, (torch.randn(2, 6),), tmp / "skip_mlp.onnx", dynamo=False)
    features = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    np.savez(tmp / "features.npz", x=features, y=(features[:, 0] > 0).astype(np.int64))
    torch.save(TensorIf(), tmp / "tensor_if.pt")
    save_graph(calibrate(from_torch(skip, (6,)), features), tmp / "quantized")  # a quantized graph folder
    return tmp


def _prune(files, out, *options):
    code, stdout, stderr = hwprune("prune", "resnet8.pt2", "--data", "digits32.npz", "--out", out,
                                   "--sparsity", "0.8", "--epochs", "1", "--batch-size", "32", "--json", *options,
                                   cwd=files)
    assert code == 0, stderr
    return json.loads(stdout)


def _export_m4(files, folder, out):
    code, _, stderr = hwprune("export", folder, "--calibration", "calibration.npy", "--out", out,
                              "--target", "stm32l4r5", cwd=files)
    assert code == 0, stderr
    report = json.loads((files / out / "report.json").read_text())
    assert report["bit_exact"] is True and report["vectors"] == 3
    for engine in ("reference", "host", "mcu"):
        assert report["engines"][engine]["bit_exact"] is True, engine
    return report


def test_resnet8_global_magnitude_80_exports_bit_exact(files):
    summary = _prune(files, "magnitude", "--scope", "global")
    assert summary["format"] == "graph" and summary["sparsity"] == pytest.approx(0.8, abs=1e-4)
    graph = load_graph(files / "magnitude")
    assert sum(layer.kind == "add" for layer in graph.layers) == 3
    assert 1 - graph.nonzero_weights / graph.total_weights == pytest.approx(0.8, abs=1e-4)
    report = _export_m4(files, "magnitude", "magnitude_m4")
    assert report["nonzero_weights"] <= graph.nonzero_weights


def test_resnet8_filters_80_shrink_both_sides_of_every_add(files):
    summary = _prune(files, "filters", "--method", "filters")
    assert summary["units_removed"] == pytest.approx(0.8, abs=0.01)
    dense = load_model(files / "resnet8.pt2")
    pruned = load_graph(files / "filters")
    report = _export_m4(files, "filters", "filters_m4")
    per_layer = {layer["name"]: layer for layer in report["layers"]}
    adds = [layer for layer in dense.layers if layer.kind == "add"]
    assert len(adds) == 3
    for add in adds:
        for operand in add.inputs:  # the conv that writes each side, through the ReLU before a shortcut
            producer = dense.layer(operand)
            while not producer.weighted:
                producer = dense.layer(producer.inputs[0])
            figures = per_layer[producer.name]
            assert figures["weight_bytes"] < producer.weight.size  # 8-bit weights: a byte each when dense
            assert figures["macs"] < dense.layer_macs(producer)
            assert pruned.layer(producer.name).out_channels < producer.out_channels
        assert pruned.shape_of(add.name)[-1] < dense.shape_of(add.name)[-1]


@pytest.mark.parametrize("model, extra", [("skip_mlp.onnx", ()), ("skip_mlp.pt", ("--trust-model",)),
                                          ("skip_mlp.onnx", ("--schedule", "gradual"))])
def test_other_formats_prune_into_graph_folders(files, model, extra):
    out = f"{model.replace('.', '_')}_{'_'.join(extra).strip('-')}_pruned"
    code, stdout, stderr = hwprune("prune", model, "--data", "features.npz", "--out", out, "--sparsity", "0.5",
                                   "--method", "neurons", "--epochs", "2", "--json", *extra, cwd=files)
    assert code == 0, stderr
    summary = json.loads(stdout)
    graph = load_graph(files / out)
    assert summary["units_removed"] == pytest.approx(0.5) and graph.layer_macs(graph.weighted_layers()[0]) < 48
    assert {layer.kind for layer in graph.layers} >= {"add", "concatenate"}


@pytest.mark.parametrize("model, out, extra, message", [
    ("tensor_if.pt", "p", ("--trust-model",), "could not be traced with torch.fx"),
    ("resnet8.pt2", "p.pt", (), "is not a torch module file"),
    ("skip_mlp.pt", "p.pt", ("--trust-model",), "is a graph with branches"),
    ("resnet8.pt2", "p", ("--method", "filters", "--schedule", "lottery"), "prunes by magnitude"),
    ("quantized", "p", (), "quantized already"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(files, model, out, extra, message):
    data = "digits32.npz" if "resnet" in model else "features.npz"
    code, stdout, stderr = hwprune("prune", model, "--data", data, "--out", out, "--sparsity", "0.5",
                                   "--epochs", "1", *extra, cwd=files)
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and "unpickled with --trust-model" not in line]
    assert len(lines) == 1 and message in lines[0], stderr
    assert not (files / out).exists()
