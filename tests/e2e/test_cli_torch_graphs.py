"""hwprune export on torch models that are graphs: ResNet-8 (residual adds, 1x1 stride-2
shortcuts, BatchNorm) pickled and as a .pt2 program, a concatenation/product model and an
MLP with a skip add; each bit-exact between the host C code and the integer reference."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the model classes, importable by name
from torch_dag_models import Inception, ResNet8, SkipMLP, randomize_batchnorm, hwprune_cli as hwprune  # noqa: E402



@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torch_graphs")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    resnet = randomize_batchnorm(ResNet8(width=0.25, size=8))
    torch.save(resnet, tmp / "resnet8.pt")
    torch.export.save(torch.export.export(resnet, (torch.randn(2, 3, 8, 8),)), tmp / "resnet8.pt2")
    np.save(tmp / "images.npy", rng.uniform(0, 1, size=(8, 3, 8, 8)).astype(np.float32))
    inception = randomize_batchnorm(Inception())
    torch.export.save(torch.export.export(inception, (torch.randn(2, 2, 6, 6),)), tmp / "inception.pt2")
    np.save(tmp / "maps.npy", rng.normal(size=(8, 2, 6, 6)).astype(np.float32))
    torch.save(randomize_batchnorm(SkipMLP()), tmp / "skip_mlp.pt")
    np.save(tmp / "features.npy", rng.normal(size=(8, 6)).astype(np.float32))
    return tmp


def _export_bit_exact(models, model, data, kinds, *extra):
    out = models / f"{model.replace('.', '_')}_out"
    code, _, stderr = hwprune("export", model, "--calibration", data, "--out", out, *extra, cwd=models)
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and report["mismatches"] == 0 and report["vectors"] == 8
    assert report["engines"]["host"]["bit_exact"] is True
    graph = json.loads((out / "graph.json").read_text())
    assert kinds <= {layer["kind"] for layer in graph["layers"]}
    return graph


@pytest.mark.parametrize("model, extra", [("resnet8.pt2", ()), ("resnet8.pt", ("--trust-model",))])
def test_resnet8_exports_bit_exact(models, model, extra):
    graph = _export_bit_exact(models, model, "images.npy", {"add", "conv2d", "dense"}, *extra)
    assert sum(layer["kind"] == "add" for layer in graph["layers"]) == 3


def test_concatenation_and_skip_add_export_bit_exact(models):
    _export_bit_exact(models, "inception.pt2", "maps.npy", {"concatenate", "multiply", "clip"})
    _export_bit_exact(models, "skip_mlp.pt", "features.npy", {"add", "concatenate"}, "--trust-model")
