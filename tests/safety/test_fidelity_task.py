"""Fidelity in the terms of the model's task: top-1 agreement for a classifier, error relative
to the output range and SQNR for a regression model (no top-1 warning), LogSoftmax named."""

import json

import numpy as np
import torch
from torch import nn

from hwprune import fidelity
from hwprune.ir import Dense, Graph, Softmax
from hwprune.quant.calibrate import QuantConfig, calibrate


def _autoencoder(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 12)).eval()
    torch.save(model, tmp_path / "ae.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(64, 12)) * 5)
    return tmp_path / "ae.pt", tmp_path / "x.npy"


def test_a_regression_model_gets_relative_error_and_sqnr_not_top1(tmp_path, run):
    model, x = _autoencoder(tmp_path)
    code, _, err = run("export", model, "--calibration", x, "--out", tmp_path / "e2", "--weight-bits", "2",
                       "--activation-bits", "3")
    report = json.loads((tmp_path / "e2" / "report.json").read_text())["fidelity"]
    assert code == 0 and report["task"] == "regression" and report["top1_agreement"] is None
    low, high = report["output_range"]
    assert np.isclose(report["max_relative_error"], report["max_abs_error"] / (high - low))
    assert report["max_relative_error"] > fidelity.RELATIVE_ERROR_WARNING and report["sqnr_db"] < 20
    assert "top class" not in err and "top-1" not in err
    assert f"differ from the float model's by up to {report['max_relative_error']:.1%} of their range" in err
    assert f"SQNR {report['sqnr_db']:.1f} dB" in err
    markdown = (tmp_path / "e2" / "report.md").read_text()
    assert "- task: regression" in markdown and "of the output range" in markdown and "top-1" not in markdown
    code, _, err = run("export", model, "--calibration", x, "--out", tmp_path / "e8", "--weight-bits", "12",
                       "--activation-bits", "12")
    report = json.loads((tmp_path / "e8" / "report.json").read_text())["fidelity"]
    assert code == 0 and "warning" not in err and report["sqnr_db"] > 40, err
    assert "SQNR" in err and "of the output range" in err


def test_task_flag_overrides_and_is_checked(tmp_path, run):
    model, x = _autoencoder(tmp_path)
    code, _, err = run("export", model, "--calibration", x, "--out", tmp_path / "c", "--task", "classification")
    report = json.loads((tmp_path / "c" / "report.json").read_text())["fidelity"]
    assert code == 0 and report["task"] == "classification" and report["top1_agreement"] is not None
    code, _, err = run("export", model, "--calibration", x, "--out", tmp_path / "bad", "--task", "ranking")
    assert code == 2 and "--task" in err


def test_a_model_ending_in_log_softmax_is_named_as_such(tmp_path, run):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.LogSoftmax(dim=-1)).eval()
    torch.save(model, tmp_path / "log.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(32, 6)))
    code, _, err = run("export", tmp_path / "log.pt", "--calibration", tmp_path / "x.npy", "--out", tmp_path / "e")
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert code == 0 and "top-1 agreement" in err, err
    assert report["fidelity"]["task"] == "classification"
    assert "final LogSoftmax is not computed" in report["outputs"]
    assert "final LogSoftmax is not computed" in (tmp_path / "e" / "c" / "model.h").read_text()


def test_sqnr_and_relative_error_figures_by_hand():
    rng = np.random.default_rng(0)
    graph = calibrate(Graph.chain("g", (3,), (Dense("fc", rng.normal(size=(2, 3)), np.zeros(2)),)), rng.normal(size=(8, 3)),
                      QuantConfig(8, 8))
    y_float = np.array([[0.0, 1.0], [2.0, 4.0]])
    y_int = np.round(np.array([[0.5, 1.0], [2.0, 3.0]]) * 2 ** graph.output_t.frac_bits).astype(np.int64)
    figures = fidelity.measure(y_float, y_int, graph, None)
    assert figures["task"] == "regression" and figures["output_range"] == [0.0, 4.0]
    assert figures["max_relative_error"] == 0.25 and figures["mean_relative_error"] == 0.375 / 4
    assert np.isclose(figures["sqnr_db"], 10 * np.log10(21 / 1.25))
    with_softmax = graph.with_layers([*graph.layers, Softmax("softmax", inputs=("fc",))], outputs=("softmax",))
    swapped = y_int.copy()
    swapped[0] = swapped[0, ::-1]  # the first vector's top class changes, the second's stays
    assert fidelity.measure(y_float, swapped, with_softmax, None)["top1_agreement"] == 0.5
