"""The command line on conv models: prune --method filters, export, verify, predict in NCHW,
and the settings hwprune cannot map (one line naming the module, exit 2, nothing written)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.data import load_dataset
from hwprune.prune.train import fit


def digits_cnn():
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10),
    )


def test_prune_filters_then_export_halves_the_bytes(cli, tmp_path):
    d = load_dataset("digits", seed=0)
    x, y = d.x_train[:512].reshape(-1, 1, 8, 8), d.y_train[:512]
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.save(tmp_path / "calib.npy", x)
    np.save(tmp_path / "test.npy", d.x_test[:100].reshape(-1, 1, 8, 8))
    model = digits_cnn()
    fit(model, x, y, epochs=3, lr=3e-3)
    torch.save(model.eval(), tmp_path / "cnn.pt")

    code, out, err = cli("prune", tmp_path / "cnn.pt", "--data", tmp_path / "train.npz", "--out", tmp_path / "p.pt",
                         "--sparsity", "0.5", "--method", "filters", "--epochs", "1", "--json")
    assert code == 0, err
    for name, src in (("full", "cnn.pt"), ("half", "p.pt")):
        cli("export", tmp_path / src, "--calibration", tmp_path / "calib.npy", "--format", "dense",
            "--out", tmp_path / name, check_exit=0)
    full, half = ({r["name"]: r for r in json.loads((tmp_path / n / "report.json").read_text())["layers"]}
                  for n in ("full", "half"))
    assert half["conv_0"]["output_shape"] == [8, 8, 4] and half["conv_4"]["output_shape"] == [2, 2, 8]
    assert half["conv_0"]["weight_bytes"] * 2 == full["conv_0"]["weight_bytes"]
    # conv_4 lost half its filters and half its input channels; the Linear half its inputs.
    assert half["conv_4"]["weight_bytes"] * 4 == full["conv_4"]["weight_bytes"]
    assert half["dense_7"]["weight_bytes"] * 2 == full["dense_7"]["weight_bytes"]

    code, stdout, _ = cli("verify", tmp_path / "half", "--json", "--inputs", tmp_path / "test.npy", check_exit=0)
    assert json.loads(stdout)["bit_exact"] and json.loads(stdout)["vectors"] == 100
    # predict takes the torch model's own NCHW layout; host C and reference agree.
    for engine in ("reference", "host"):
        cli("predict", tmp_path / "half", "--inputs", tmp_path / "test.npy", "--engine", engine,
            "--out", tmp_path / f"{engine}.npy", check_exit=0)
    assert np.array_equal(np.load(tmp_path / "reference.npy"), np.load(tmp_path / "host.npy"))
    pruned = torch.load(tmp_path / "p.pt", weights_only=False).eval()
    with torch.no_grad():
        torch_out = pruned(torch.tensor(np.load(tmp_path / "test.npy"), dtype=torch.float32)).numpy()
    assert np.mean(torch_out.argmax(1) == np.load(tmp_path / "host.npy").argmax(1)) > 0.95


def test_a_model_ending_in_a_conv_predicts_in_nchw(cli, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)).eval()
    torch.save(model, tmp_path / "m.pt")
    x = np.random.default_rng(0).standard_normal((20, 2, 6, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    cli("export", tmp_path / "m.pt", "--calibration", tmp_path / "x.npy", "--weight-bits", "12",
        "--activation-bits", "12", "--out", tmp_path / "e", check_exit=0)
    for engine in ("reference", "host"):
        cli("predict", tmp_path / "e", "--inputs", tmp_path / "x.npy", "--engine", engine,
            "--out", tmp_path / f"{engine}.npy", check_exit=0)
    y = np.load(tmp_path / "host.npy")
    assert np.array_equal(y, np.load(tmp_path / "reference.npy"))
    with torch.no_grad():
        expected = model(torch.tensor(x)).numpy()
    assert y.shape == expected.shape == (20, 3, 3, 2)  # torch's own layout
    assert np.abs(y - expected).max() < 0.05


@pytest.mark.parametrize("module,message", [
    (nn.Conv2d(1, 4, 3, dilation=2), "module '0' (Conv2d): dilation=(2, 2) is not supported"),
    (nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular"), "module '0' (Conv2d): padding_mode='circular'"),
])
def test_unsupported_conv_settings(cli, tmp_path, module, message):
    torch.save(nn.Sequential(module, nn.ReLU(), nn.Flatten()), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 8, 8)))
    code, _, stderr = cli("export", tmp_path / "m.pt", "--calibration", tmp_path / "x.npy", "--out", tmp_path / "o")
    assert code == 2 and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "x.npy"]  # nothing written


def test_unsupported_groups_and_pooling_are_named():
    from hwprune.errors import UnsupportedLayerError
    from hwprune.frontends.torch import from_torch

    cases = [
        (nn.Conv2d(4, 4, 3, groups=2), (4, 8, 8), "module '0' (Conv2d): groups=2 is not supported"),
        (nn.Sequential(nn.Conv1d(2, 2, 3), nn.AvgPool1d(2, ceil_mode=True)), (2, 8), "module '1' (AvgPool1d): ceil_mode"),
        (nn.Sequential(nn.Conv2d(2, 2, 3), nn.AdaptiveAvgPool2d(2)), (2, 8, 8),
         "module '1' (AdaptiveAvgPool2d): output_size=2"),
        (nn.Sequential(nn.Conv1d(2, 2, 3), nn.MaxPool1d(2, dilation=2)), (2, 8), "module '1' (MaxPool1d): dilation=2"),
        (nn.Sequential(nn.Conv2d(2, 2, 3), nn.Flatten()), (2, 8, 8), "(Flatten) of a (6, 6, 2) tensor must be followed"),
        (nn.Sequential(nn.ZeroPad2d(1), nn.ReLU()), (2, 8, 8), "module '0' (ZeroPad2d) is folded into a conv"),
    ]
    for model, shape, message in cases:
        with pytest.raises(UnsupportedLayerError) as info:
            from_torch((model if isinstance(model, nn.Sequential) else nn.Sequential(model)).eval(), shape)
        assert message in str(info.value), (message, str(info.value))
