"""What `hwprune prune` promises, on a model and data set no other prune test uses (wine,
13-17-11-3): the requested sparsity exactly per layer, zeros kept through fine-tuning, and
a warning when global pruning collapses a layer."""

import json

import numpy as np
import pytest
import torch

from hwprune.data import load_dataset
from hwprune.frontends.torch import load_torch_model
from hwprune.prune import fit, make_mlp, prunable_modules


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    root = tmp_path_factory.mktemp("wine_prune")
    data = load_dataset("wine", seed=4)
    model = make_mlp((13, 17, 11, 3), seed=4)
    fit(model, data.x_train, data.y_train, epochs=20, lr=3e-3, seed=4)
    torch.save(model, root / "wine.pt")
    np.savez(root / "train.npz", x=data.x_train, y=data.y_train)
    return root


@pytest.mark.parametrize("sparsity", [0.37, 0.83])
def test_layer_scope_is_exact_per_layer_and_zeros_stay_zero(cli, wine, tmp_path, sparsity):
    out = tmp_path / "p.pt"
    code, stdout, stderr = cli("prune", wine / "wine.pt", "--data", wine / "train.npz", "--out", out,
                               "--sparsity", str(sparsity), "--epochs", "15", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    for name, module in prunable_modules(load_torch_model(out)).items():
        n = module.weight.numel()
        zeros = int((module.weight == 0).sum())
        # round(s * n) pruned and still exactly zero after 15 epochs of Adam; no other
        # weight of a trained float network lands on exactly zero.
        assert zeros == round(sparsity * n), (name, zeros, n)
        assert report["layers"][name] == zeros / n


def test_global_collapse_is_warned(cli, wine, tmp_path):
    out = tmp_path / "p.pt"
    code, stdout, stderr = cli("prune", wine / "wine.pt", "--data", wine / "train.npz", "--out", out,
                               "--sparsity", "0.97", "--scope", "global", "--epochs", "1", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["collapse_warnings"], report
    assert "min-density" in stderr or "min_density" in stderr, stderr
    # The remedy: a floor on every layer's density.
    code, stdout, stderr = cli("prune", wine / "wine.pt", "--data", wine / "train.npz", "--out", tmp_path / "q.pt",
                               "--sparsity", "0.9", "--scope", "global", "--min-density", "0.08", "--epochs", "1",
                               "--json")
    assert code == 0, stderr
    assert min(1 - s for s in json.loads(stdout)["layers"].values()) >= 0.08 - 1e-9
