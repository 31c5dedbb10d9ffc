"""Structured pruning really shrinks the C arrays, and the smaller export stays bit-exact."""

import json

import torch

from hwprune.data import load_dataset
from hwprune.frontends.torch import from_torch
from hwprune.backends.c.options import COptions
from hwprune.pipeline import ExportOptions, write_export
from hwprune.prune import apply_masks, compute_masks, fit, make_mlp, remove_pruned_neurons, strip_masks
from hwprune.quant.calibrate import QuantConfig, calibrate


def _export(model, name, data, out):
    graph = calibrate(from_torch(model, name=name), data.x_train, QuantConfig(8, 8))
    write_export(graph, out, data.x_test, ExportOptions(), backends=(COptions(format="dense"),))
    return json.loads((out / "report.json").read_text())


def test_half_the_neurons_half_the_bytes(tmp_path):
    data = load_dataset("digits", seed=5)
    model = make_mlp((64, 96, 48, 10), seed=5)
    fit(model, data.x_train, data.y_train, epochs=8, seed=5)
    before = _export(model, "full", data, tmp_path / "full")

    # 50 % of the neurons of the first hidden layer only (an explicit per-layer target).
    apply_masks(model, compute_masks(model, {"0": 0.5}, method="neurons"))
    fit(model, data.x_train, data.y_train, epochs=4, seed=6)
    small = remove_pruned_neurons(strip_masks(model))
    assert small[0].out_features == 48 and small[2].in_features == 48
    x = torch.tensor(data.x_test, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(small(x).argmax(1), model(x).argmax(1))
    after = _export(small, "half", data, tmp_path / "half")

    assert before["bit_exact"] and after["bit_exact"] and after["vectors"] == len(data.x_test)
    b = {l["name"]: l for l in before["layers"] if l["kind"] == "dense"}
    a = {l["name"]: l for l in after["layers"] if l["kind"] == "dense"}
    names = list(b)
    for name in names[:2]:  # the pruned layer and its successor
        ratio = a[name]["weight_bytes"] / b[name]["weight_bytes"]
        assert abs(ratio - 0.5) < 0.02, (name, ratio)
    assert a[names[2]]["weight_bytes"] == b[names[2]]["weight_bytes"]
    assert after["flash_bytes"] < before["flash_bytes"]
    assert (before["macs"], after["macs"]) == (64 * 96 + 96 * 48 + 48 * 10, 64 * 48 + 48 * 48 + 48 * 10)
