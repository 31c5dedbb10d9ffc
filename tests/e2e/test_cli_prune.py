"""``hwprune prune`` run as a user runs it: a subprocess, files in, files and JSON out."""

import json

import numpy as np
import pytest
import torch

from hwprune.data import load_dataset
from hwprune.frontends.torch import load_torch_model
from hwprune.prune.masks import prunable_modules
from hwprune.prune.train import evaluate, fit, make_mlp


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    d = load_dataset("digits", seed=0)
    x, y = d.x_train[:256], d.y_train[:256]
    np.savez(root / "train.npz", x=x, y=y)
    torch.save(make_mlp((64, 24, 10), seed=0), root / "init.pt")
    trained = make_mlp((64, 24, 10), seed=0)
    fit(trained, x, y, epochs=6, lr=3e-3)
    torch.save(trained, root / "trained.pt")
    return root


def _run_json(cli, *args):
    code, out, err = cli("prune", *args, "--json")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1  # one JSON object alone on stdout
    return json.loads(out)


@pytest.mark.parametrize(
    "model,options",
    [
        ("trained.pt", ["--schedule", "oneshot", "--scope", "global"]),
        ("trained.pt", ["--schedule", "iterative", "--rounds", "2"]),
        ("trained.pt", ["--schedule", "gradual", "--scope", "global", "--min-density", "0.05"]),
        ("init.pt", ["--schedule", "lottery", "--rounds", "2", "--rewind-iteration", "3"]),
    ],
)
def test_prune_writes_a_plain_pruned_module_and_reports_json(cli, files, tmp_path, model, options):
    out = tmp_path / "pruned.pt"
    report = _run_json(cli, files / model, "--data", files / "train.npz", "--out", out, "--sparsity", "0.75",
                       "--epochs", "2", *options)
    assert report["schedule"] == options[1] and report["method"] == "magnitude"
    assert report["sparsity"] == pytest.approx(0.75, abs=2e-3)
    pruned = load_torch_model(out)
    assert not any(hasattr(m, "parametrizations") for m in pruned.modules())
    modules = prunable_modules(pruned)
    assert set(report["layers"]) == set(modules)
    for name, module in modules.items():
        assert report["layers"][name] == int((module.weight == 0).sum()) / module.weight.numel()
    data = np.load(files / "train.npz")
    assert report["train_accuracy"] == pytest.approx(evaluate(pruned, data["x"], data["y"]))
    if "--min-density" in options:
        assert min(1 - s for s in report["layers"].values()) >= 0.05 - 1e-9


def test_neurons_method_removes_whole_rows_and_plain_output(cli, files, tmp_path):
    out = tmp_path / "p.pt"
    code, stdout, err = cli("prune", files / "trained.pt", "--data", files / "train.npz", "--out", out,
                            "--sparsity", "0.5", "--method", "neurons", "--epochs", "1")
    assert code == 0, err
    assert stdout.startswith(f"wrote {out}")
    rows = load_torch_model(out)[0].weight
    assert int((rows == 0).all(dim=1).sum()) == 12  # half of the 24 hidden units


@pytest.mark.parametrize("sparsity, nm, kept", [("0.75", [], (1, 4)), ("0.875", ["--nm", "1:8"], (1, 8))])
def test_nm_keeps_n_of_every_m_weights_as_the_sparsity_says(cli, files, tmp_path, sparsity, nm, kept):
    out = tmp_path / "p.pt"
    report = _run_json(cli, files / "trained.pt", "--data", files / "train.npz", "--out", out, "--sparsity", sparsity,
                       "--method", "nm", "--epochs", "1", *nm)
    assert report["sparsity"] == pytest.approx(float(sparsity))
    n, m = kept
    for module in prunable_modules(load_torch_model(out)).values():
        groups = (module.weight != 0).reshape(module.weight.shape[0], -1, m).sum(dim=-1)
        assert int(groups.max()) <= n


def test_a_structured_method_that_misses_the_sparsity_says_so(cli, files, tmp_path):
    code, stdout, err = cli("prune", files / "trained.pt", "--data", files / "train.npz", "--out", tmp_path / "p.pt",
                            "--sparsity", "0.5", "--method", "neurons", "--epochs", "1")
    assert code == 0, err
    assert "warning: reached" in err and "not the requested 50%" in err and "--method neurons removes whole units" in err


def _bad_data(root):
    np.savez(root / "no_y.npz", x=np.zeros((4, 64), np.float32))
    np.savez(root / "negative.npz", x=np.zeros((2, 64), np.float32), y=np.array([0, -3]))
    np.savez(root / "eleven.npz", x=np.zeros((2, 64), np.float32), y=np.array([0, 10]))
    (root / "junk.pt").write_bytes(b"not a model")


@pytest.mark.parametrize(
    "model,data,extra,message",
    [
        ("trained.pt", "no_y.npz", [], "missing array.*y"),
        ("trained.pt", "negative.npz", [], ">= 0"),
        ("trained.pt", "eleven.npz", [], r"labels go up to 10 \(11 classes\).*10 outputs"),
        ("trained.pt", "train.npz", ["--sparsity", "1.0"], r"--sparsity must be in \[0, 1\)"),
        ("junk.pt", "train.npz", [], "not a readable torch model"),
        ("trained.pt", "train.npz", ["--method", "filters"], "no Conv layers"),
        ("init.pt", "train.npz", ["--method", "random", "--schedule", "lottery"], "by magnitude"),
        ("trained.pt", "train.npz", ["--method", "nm", "--sparsity", "0.7"],
         r"0.7 is no N:M .* nearest are 0.6875 \(5:16\), 0.75 \(1:4\)"),
        ("trained.pt", "train.npz", ["--method", "nm", "--nm", "1:4"], "removes 75.00% .* give --sparsity 0.75"),
        ("trained.pt", "train.npz", ["--nm", "2:4"], "--nm applies to --method nm only"),
    ],
)
def test_errors_are_one_line_exit_2_and_no_output(cli, files, tmp_path, model, data, extra, message):
    _bad_data(files)
    out = tmp_path / "p.pt"
    sparsity = [] if "--sparsity" in extra else ["--sparsity", "0.5"]
    code, stdout, err = cli("prune", files / model, "--data", files / data, "--out", out, *sparsity, *extra,
                            "--epochs", "1")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwprune prune: error:"), err
    import re

    assert re.search(message, lines[0]), lines[0]
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(cli, files, tmp_path):
    out = tmp_path / "p.pt"
    out.write_text("keep me")
    args = ["prune", files / "trained.pt", "--data", files / "train.npz", "--out", out, "--sparsity", "0.5",
            "--epochs", "1"]
    code, _, err = cli(*args)
    assert code == 2 and "--force" in err and out.read_text() == "keep me"
    code, _, err = cli(*args, "--force")
    assert code == 0, err
    assert isinstance(load_torch_model(out), torch.nn.Module)
    assert [p.name for p in tmp_path.iterdir()] == ["p.pt"]  # no temporary files left behind
