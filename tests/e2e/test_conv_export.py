"""Convolutional networks end to end: train, prune, quantize, export C, verify bit for bit.

The digits CNN is the one of issue 13: Conv2d(1, 8, 3, padding=1) - BatchNorm2d - ReLU -
MaxPool2d(2) - Conv2d(8, 16, 3) - ReLU - Flatten - Linear(64, 10).
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import reference
from hwprune.data import load_dataset
from hwprune.frontends.torch import from_torch
from hwprune.backends.c.options import COptions
from hwprune.ir.io import load_graph
from hwprune.pipeline import ExportOptions, export_model, write_export
from hwprune.prune import apply_masks, compute_masks, evaluate, fit, remove_pruned_neurons, strip_masks
from hwprune.quant.calibrate import QuantConfig, calibrate, float_forward


def digits_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", seed=0)
    images = lambda x: x.reshape(-1, 1, 8, 8)  # noqa: E731  (NCHW, as the torch model takes them)
    return images(data.x_train), data.y_train, images(data.x_test), data.y_test


def accuracy(scores, y) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == y))


def test_digits_cnn_pruned_80_percent_exports_bit_exact(digits, tmp_path):
    x_train, y_train, x_test, y_test = digits
    model = digits_cnn()
    fit(model, x_train, y_train, epochs=15, lr=3e-3)
    dense_acc = evaluate(model, x_test, y_test)
    apply_masks(model, compute_masks(model, 0.8, method="magnitude", scope="global"))
    fit(model, x_train, y_train, epochs=10, lr=2e-3, seed=1)
    model = strip_masks(model).eval()
    pruned_acc = evaluate(model, x_test, y_test)

    graph = from_torch(model, (1, 8, 8), name="digits_cnn")
    assert graph.input_layout == "channels_first" and graph.input_shape == (8, 8, 1)
    assert [l.kind for l in graph.layers] == ["conv2d", "relu", "maxpool2d", "conv2d", "relu", "flatten", "dense"]
    with torch.no_grad():  # BatchNorm folded, Flatten reordered: the same function
        expected = model(torch.tensor(x_test, dtype=torch.float64).float()).double().numpy()
    assert np.allclose(float_forward(graph, x_test), expected, atol=1e-4)
    assert graph.nonzero_weights <= 0.2 * graph.total_weights + 3

    quantized = calibrate(graph, x_train, QuantConfig(8, 8))
    fixed_acc = accuracy(reference.predict(quantized, x_test), y_test)
    out = write_export(quantized, tmp_path / "cnn", x_test, ExportOptions())
    report = json.loads((out / "report.json").read_text())

    assert report["bit_exact"] and report["vectors"] == len(x_test) == 360 and report["mismatches"] == 0
    assert report["engines"]["host"]["bit_exact"] is True
    assert abs(fixed_acc - pruned_acc) <= 0.01, (dense_acc, pruned_acc, fixed_acc)
    assert pruned_acc > 0.9
    # MACs over every output position; pruning cuts the work on nonzero weights. The export
    # removes the filters global pruning left dead (prune.dead_channels): c0 and c1 are left.
    rows = {r["name"]: r for r in report["layers"]}
    conv0, conv1 = rows["conv_0"], rows["conv_4"]
    exported = load_graph(out)
    c0, c1 = exported.layer("conv_0").out_channels, exported.layer("conv_4").out_channels
    dead = report["dead_channels"]
    assert dead["macs_before"] == graph.macs and c0 == 8 - len(dead["removed"].get("conv_0", ()))
    # 'same' 3x3 on 8x8: per kernel offset 7, 8, 7 positions read the input, per axis.
    assert conv0["macs"] == (7 + 8 + 7) ** 2 * c0 and conv1["macs"] == 2 * 2 * c1 * 9 * c0
    assert report["macs"] == exported.macs == dead["macs_after"] == conv0["macs"] + conv1["macs"] + 2 * 2 * c1 * 10
    assert report["macs_sparse"] < 0.35 * graph.macs
    assert report["weight_bytes"] < report["dense_weight_bytes"]
    # balanced: csro, csr's bytes or fewer (a count byte a filter for its pointers) at a fraction of its cycles
    assert conv1["format"] == "csro" and conv1["weight_bytes"] <= conv1["csr_weight_bytes"]
    energy = report["energy_proxy_pj"]  # the proxy has rules for conv and pooling
    assert energy["total"] > 0 and {"conv2d", "maxpool2d"} <= {l["kind"] for l in energy["layers"]}


def test_conv1d_stride_avgpool_linear_head_is_bit_exact(tmp_path):
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv1d(3, 8, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool1d(2),
        nn.Conv1d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool1d(3, stride=2, padding=1), nn.Flatten(),
        nn.Linear(8 * 3, 4),
    ).double().eval()
    apply_masks(model, compute_masks(model, 0.6, method="magnitude", scope="layer"))
    model = strip_masks(model)
    x = rng.normal(size=(120, 3, 24))
    graph = from_torch(model, (3, 24), name="cnn1d")
    assert graph.shape_of(graph.layers[0].name) == (12, 8) and graph.layers[5].count_pad  # torch counts the padding
    with torch.no_grad():
        assert np.allclose(float_forward(graph, x), model(torch.tensor(x)).numpy(), atol=1e-12)
    quantized = calibrate(graph, x, QuantConfig(8, 8))
    for fmt in ("dense", "csr"):
        out = write_export(quantized, tmp_path / fmt, x, ExportOptions(), backends=(COptions(format=fmt),))
        report = json.loads((out / "report.json").read_text())
        assert report["bit_exact"] and report["vectors"] == 120, report["engines"]
        assert {r["format"] for r in report["layers"] if r["weighted"]} == {fmt}


def _conv_report(model, x, out, name):
    """export_model: all-zero filters removed, calibrated on x, the test vectors x."""
    export_model(from_torch(model, (1, 8, 8), name=name), out, x[:200], ExportOptions(), backends=(COptions(format="dense"),))
    report = json.loads((out / "report.json").read_text())
    return report, {r["name"]: r for r in report["layers"]}


def test_half_the_filters_half_the_bytes(digits, tmp_path):
    x_train, y_train, x_test, y_test = digits
    model = digits_cnn(seed=2)
    fit(model, x_train, y_train, epochs=3, lr=3e-3)
    model.eval()
    before, b = _conv_report(model, x_test, tmp_path / "full", "full")

    # By hand: half the filters of the first conv are zero; export removes them (with the
    # BatchNorm channels folded into them) and the next conv's input channels go too.
    with torch.no_grad():
        model[0].weight[::2] = 0.0
    after, a = _conv_report(model, x_test, tmp_path / "half", "half")
    assert after["removed_neurons"] == {"conv_0": 4}
    for name in ("conv_0", "conv_4"):
        assert a[name]["weight_bytes"] * 2 == b[name]["weight_bytes"], name
    assert a["dense_7"]["weight_bytes"] == b["dense_7"]["weight_bytes"]
    assert before["bit_exact"] and after["bit_exact"] and after["vectors"] == 200

    # The same through torch's structured removal: the pruned model keeps its function.
    small = remove_pruned_neurons(model)
    assert (small[0].out_channels, small[1].num_features, small[4].in_channels) == (4, 4, 4)
    x = torch.tensor(x_test, dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)
