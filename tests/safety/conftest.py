"""Helpers of the safety tests: run the CLI in-process (fast) and snapshot a folder."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.cli import main
from hwprune.harness.build import find_cc


def snapshot(root: Path) -> dict:
    """Every path below ``root`` (hidden ones too) with its mode and content hash."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            out[str(path.relative_to(root))] = (st.st_mode, digest)
    return out


@pytest.fixture
def run(capsys):
    """Run ``hwprune ARGS`` in this process; returns (exit code, stdout, stderr)."""

    def _run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


@pytest.fixture
def mlp_files(tmp_path):
    """A small trained-looking MLP saved with torch.save, and calibration inputs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).eval()
    torch.save(model, tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 6)))
    return tmp_path / "m.pt", tmp_path / "x.npy"


@pytest.fixture(scope="module")
def compiler():
    """The host C compiler (the fuzz tests build with it)."""
    try:
        return find_cc()
    except Exception as exc:  # pragma: no cover - CI has a compiler
        pytest.skip(str(exc))
