"""The sweep's inputs are checked once, before any trial: a bad --test file is exit 2."""

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import DataError
from hwprune.sweep import load_inputs


def test_test_labels_beyond_the_models_outputs_name_the_file(tmp_path):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), tmp_path / "m.pt")
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(12) % 3)
    np.savez(tmp_path / "test.npz", x=x[:5], y=np.array([0, 1, 2, 7, 1]))
    load_inputs(tmp_path / "m.pt", tmp_path / "train.npz", tmp_path / "train.npz")  # a fitting file passes
    with pytest.raises(DataError, match=r"test\.npz: labels go up to 7 .* 3 outputs"):
        load_inputs(tmp_path / "m.pt", tmp_path / "train.npz", tmp_path / "test.npz")
