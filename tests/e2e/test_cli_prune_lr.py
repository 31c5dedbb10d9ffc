"""``hwprune prune`` with learning-rate schedules and LR rewinding, as a user runs it."""

import json

import numpy as np
import pytest
import torch

from hwprune.data import load_dataset
from hwprune.frontends.torch import load_torch_model
from hwprune.prune import rewinding
from hwprune.prune.train import make_mlp

pytestmark = pytest.mark.filterwarnings("ignore::hwprune.prune.algorithms.LayerCollapseWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune_lr")
    d = load_dataset("digits", seed=0)
    np.savez(root / "train.npz", x=d.x_train[:192], y=d.y_train[:192])
    torch.save(make_mlp((64, 16, 10), seed=0), root / "init.pt")
    return root


def test_lottery_with_lr_rewinding_is_the_library_call(cli, files, tmp_path):
    out = tmp_path / "p.pt"
    code, stdout, err = cli("prune", files / "init.pt", "--data", files / "train.npz", "--out", out, "--json",
                            "--sparsity", "0.8", "--schedule", "lottery", "--rewind", "lr", "--lr-schedule", "onecycle",
                            "--warmup-steps", "2", "--rounds", "2", "--rewind-iteration", "4", "--epochs", "3",
                            "--lr", "0.003", "--seed", "1")
    assert code == 0, err
    report = json.loads(stdout)
    assert (report["rewind"], report["lr_schedule"], report["warmup_steps"]) == ("lr", "onecycle", 2)
    data = np.load(files / "train.npz")
    expected = rewinding.lottery(make_mlp((64, 16, 10), seed=0), data["x"], data["y"], 0.8, rounds=2, epochs=3,
                                  rewind_iteration=4, rewind="lr", lr=3e-3, lr_schedule="onecycle", warmup=2,
                                  seed=1, strip=True)
    pruned = load_torch_model(out)
    assert all(torch.equal(p, q) for p, q in zip(pruned.parameters(), expected.model.parameters()))


@pytest.mark.parametrize("extra, message", [
    (["--rewind", "lr"], "--rewind applies to --schedule lottery only, not oneshot"),
    (["--warmup-steps", "-1"], "--warmup-steps must be an integer from 0 to 1000000000, got -1"),
])
def test_bad_lr_options_are_one_line_exit_2(cli, files, tmp_path, extra, message):
    code, stdout, err = cli("prune", files / "init.pt", "--data", files / "train.npz", "--out", tmp_path / "p.pt",
                            "--sparsity", "0.5", "--epochs", "1", *extra)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and stdout == "" and len(lines) == 1 and message in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_lr_rewinding_at_a_constant_rate_is_warned(cli, files, tmp_path):
    code, _, err = cli("prune", files / "init.pt", "--data", files / "train.npz", "--out", tmp_path / "p.pt",
                       "--sparsity", "0.5", "--epochs", "1", "--rounds", "1", "--schedule", "lottery", "--rewind", "lr")
    assert code == 0, err
    assert "warning: --rewind lr with a constant learning rate has no schedule to rewind" in err
