"""Model files load without running their code unless --trust-model says so."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import TrustError
from hwprune.frontends.torch import SAFE_MODULES, UnsafeLoadWarning, load_torch_model, save_torch_model
from hwprune.pipeline import load_model


class Payload:
    """Unpickling this creates a marker file: proof that code from the model ran."""

    marker = ""

    def __reduce__(self):
        return (os.mknod, (self.marker,))


def _payloads(tmp_path):
    Payload.marker = str(tmp_path / "RAN")
    bare = tmp_path / "bare.pt"
    torch.save(Payload(), bare)
    hidden = tmp_path / "hidden.pt"
    model = nn.Sequential(nn.Linear(4, 2))
    model.extra = Payload()  # rides along inside a real Sequential
    torch.save(model, hidden)
    return bare, hidden


def test_payloads_never_run_without_trust(tmp_path, run):
    bare, hidden = _payloads(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((8, 4)))
    np.savez(tmp_path / "train.npz", x=np.zeros((8, 4), np.float32), y=np.zeros(8, np.int64))
    for path in (bare, hidden):
        with pytest.raises(TrustError, match="--trust-model"):
            load_model(path)
        code, _, err = run("export", path, "--out", tmp_path / "out", "--calibration", tmp_path / "x.npy")
        assert code == 2 and "--trust-model" in err and len(err.strip().splitlines()) == 1, err
        code, _, err = run("prune", path, "--data", tmp_path / "train.npz", "--out", tmp_path / "p.pt",
                           "--sparsity", "0.5", "--epochs", "0")
        assert code == 2 and "--trust-model" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "RAN").exists() and not (tmp_path / "out").exists() and not (tmp_path / "p.pt").exists()
    # The flag is the one door, and it says what it did.
    with pytest.warns(UnsafeLoadWarning, match="trust-model"):
        load_torch_model(hidden, trust_model=True)
    assert (tmp_path / "RAN").exists()


def test_the_allow_list_covers_every_layer_the_frontends_map(tmp_path):
    layers = [getattr(nn, name) for name in SAFE_MODULES]
    assert {nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten, nn.Dropout, nn.Softmax, nn.ReLU,
            nn.Linear, nn.Sequential} <= set(layers)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(2, 3), nn.Softmax(dim=-1),
                          nn.Sequential(nn.Conv1d(1, 1, 1), nn.MaxPool1d(1), nn.AvgPool1d(1), nn.AdaptiveAvgPool1d(1),
                                        nn.BatchNorm1d(1), nn.Identity(), nn.LogSoftmax(dim=-1)))
    torch.save(model, tmp_path / "all.pt")
    loaded = load_torch_model(tmp_path / "all.pt")
    assert [type(m) for m in loaded.modules()] == [type(m) for m in model.modules()]


def test_a_plain_sequential_exports_without_the_flag(mlp_files, tmp_path, run):
    code, _, err = run("export", mlp_files[0], "--out", tmp_path / "e", "--calibration", mlp_files[1])
    assert code == 0 and "bit-exact" in err and "warning" not in err, err


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_prune_output_loads_back_without_the_flag(tmp_path, run):
    """A model of the user's own class needs trust once; what prune writes never does."""
    torch.manual_seed(0)
    torch.save(Custom(), tmp_path / "custom.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(32, 6)).astype(np.float32), y=rng.integers(0, 3, 32))
    code, _, err = run("prune", tmp_path / "custom.pt", "--data", tmp_path / "train.npz", "--out",
                       tmp_path / "p.pt", "--sparsity", "0.5", "--epochs", "1")
    assert code == 2 and "--trust-model" in err
    code, _, err = run("prune", tmp_path / "custom.pt", "--data", tmp_path / "train.npz", "--out",
                       tmp_path / "p.pt", "--sparsity", "0.5", "--epochs", "1", "--trust-model")
    assert code == 0 and "warning" in err, err
    pruned = load_torch_model(tmp_path / "p.pt")  # no trust needed
    assert type(pruned) is nn.Sequential and os.stat(tmp_path / "p.pt").st_mode & 0o777 == 0o666 & ~_umask()
    x = torch.tensor(rng.normal(size=(5, 6)))
    np.save(tmp_path / "x.npy", x.numpy())
    code, _, err = run("export", tmp_path / "p.pt", "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 0, err


def _umask():
    from hwprune.outputs import umask

    return umask()


def test_save_torch_model_keeps_the_function(tmp_path):
    torch.manual_seed(1)
    model = Custom().double()
    save_torch_model(model, tmp_path / "s.pt")
    loaded = load_torch_model(tmp_path / "s.pt")
    x = torch.randn(4, 6, dtype=torch.float64)
    assert torch.equal(loaded(x), model(x))
