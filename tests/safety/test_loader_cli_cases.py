"""Inputs that used to end in a traceback: one line on stderr, exit 2, nothing written."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import manifest

TARGETS = Path(__file__).resolve().parents[2] / "targets"


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(20, 6)))
    np.savez(tmp_path / "train.npz", x=rng.normal(size=(20, 6)).astype(np.float32), y=rng.integers(0, 3, 20))
    return tmp_path


def _one_line_exit_2(result, message):
    code, out, err = result
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert message in err and "Traceback" not in err, err


def test_cc_with_an_unbalanced_quote(files, run, monkeypatch):
    monkeypatch.setenv("CC", 'gcc "-O2')
    _one_line_exit_2(run("export", files / "m.pt", "--calibration", files / "x.npy", "--out", files / "o"),
                     "$CC is 'gcc \"-O2', which is not a valid command line (No closing quotation)")
    assert not (files / "o").exists()


@pytest.mark.parametrize("seed", [2**32, 10**30, -1])
def test_prune_seed_outside_its_range(seed, files, run):
    _one_line_exit_2(run("prune", files / "m.pt", "--data", files / "train.npz", "--out", files / "p.pt",
                         "--sparsity", "0.5", "--seed", seed, "--epochs", "1"),
                     "--seed must be an integer from 0 to 4294967295")
    assert not (files / "p.pt").exists()


@pytest.mark.parametrize("spec", [{"kind": "mcu", "bogus": 1}, ["not", "a", "table"], {"name": "t", "kind": "mcu"},
                                  {"name": "t", "kind": "mcu", "description": "d", "cpu": "cortex-m4",
                                   "flash_kib": "lots", "ram_kib": 1, "clock_mhz": 80, "energy_nj_per_cycle": 0.1}],
                         ids=["unknown key", "a list", "missing keys", "a value of the wrong type"])
def test_a_bad_target_spec_in_an_export_folder(spec, files, run):
    """export.json's target_spec (a target file's keys), edited and the manifest forged to match."""
    code, _, err = run("export", files / "m.pt", "--calibration", files / "x.npy", "--out", files / "e",
                       "--target", TARGETS / "stm32l4r5.toml", "--no-compile")
    assert code == 0, err
    code, _, err = run("report", files / "e")
    assert code == 0, err  # the spec export wrote reads back
    meta = json.loads((files / "e" / "export.json").read_text())
    meta["target_spec"] = spec
    (files / "e" / "export.json").write_text(json.dumps(meta))
    manifest.write_pending(files / "e")
    manifest.finalize(files / "e")
    _one_line_exit_2(run("report", files / "e"), "export.json: target_spec")
