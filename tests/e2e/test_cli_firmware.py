"""What a firmware engineer meets first: --name, the logits note, option ranges in --help."""

import json

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture
def softmax_model(tmp_path):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.Softmax(dim=1)), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(32, 4)))
    return tmp_path / "m.pt", tmp_path / "x.npy"


def test_name_prefixes_every_symbol_and_the_report_says_logits(cli, softmax_model, tmp_path):
    out = tmp_path / "out"
    cli("export", softmax_model[0], "--calibration", softmax_model[1], "--out", out, "--name", "wrist_imu",
        check_exit=0)
    header = (out / "c" / "model.h").read_text()
    assert "model 'wrist_imu'" in header and "#define WRIST_IMU_INPUT_SIZE 4" in header
    assert "int wrist_imu_predict(" in header and "int wrist_imu_argmax(" in header
    for text in (header, (out / "c" / "model.c").read_text(), (out / "c" / "model_weights.h").read_text()):
        assert "m_predict" not in text and "hwprune_m_" not in text and "M_MODEL" not in text
    assert "Outputs are logits (the model's final Softmax is not computed)." in header
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "wrist_imu" and report["bit_exact"]
    assert report["outputs"] == "outputs are logits (the model's final Softmax is not computed)"
    assert [l["kind"] for l in report["layers"]] == ["dense", "relu", "dense"]
    code, stdout, _ = cli("verify", out, "--json", check_exit=0)
    energy = json.loads(stdout)["energy_proxy_pj"]
    assert energy == report["energy_proxy_pj"]
    assert energy["total"] == pytest.approx(energy["compute"] + energy["weight_reads"] + energy["activation_traffic"])
    assert [l["name"] for l in energy["layers"]] == [l["name"] for l in report["layers"]]
    assert energy["float32_dense"]["total"] > energy["total"] > 0
    markdown = (out / "report.md").read_text()
    assert "## Energy proxy per inference (45 nm)" in markdown and "not a measurement of a chip" in markdown
    assert "- outputs are logits (the model's final Softmax is not computed)" in markdown
    assert "softmax" not in markdown.split("## Layers")[1].split("\n\n")[1]


@pytest.mark.parametrize("name", ["2nd", "my-model", "int", "_private"])
def test_a_bad_name_is_refused_before_any_work(cli, softmax_model, tmp_path, name):
    code, _, stderr = cli("export", softmax_model[0], "--calibration", softmax_model[1], "--out", tmp_path / "o",
                          "--name", name)
    assert code == 2 and stderr.count("\n") == 1 and f"--name {name!r}" in stderr
    assert not (tmp_path / "o").exists()


def test_export_help_gives_ranges_and_what_happens_without_calibration(cli):
    _, stdout, _ = cli("export", "--help", check_exit=0)
    text = " ".join(stdout.split())
    assert "2 to 16 (default 8; 16 with --backend hls4ml" in text and "0 <= S < 1" in text
    assert "Required for a float model" in text and "Optional for a quantized graph" in text
    assert "--name NAME" in text
