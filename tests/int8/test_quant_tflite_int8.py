"""``export --quant tflite-int8``: float models quantized as TFLite's converter does, written
as a .tflite file, and the reference, the int8 host C and TFLite Micro equal on every tensor,
dense and pruned."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import reference
from hwprune.backends.tflite_file import write_tflite
from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.frontends.tflite import read_tflite
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Clip, Dense, ReLU
from hwprune.ir.spatial import Conv1D, Conv2D
from hwprune.pipeline import ExportOptions, export_model, load_model
from hwprune.ir.int8_types import activation_range
from hwprune.quant.tflite_int8 import affine_from_range, quantize_tflite_int8, quantize_weights, weight_scales


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5)).eval(), (16,)


def _cnn():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),  # depthwise
                         nn.Conv2d(8, 6, 3, stride=2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(6, 10), nn.Softmax(dim=1)).eval(), (1, 12, 12)


MODELS = {"mlp": _mlp, "cnn": _cnn}


def test_activation_type_holds_zero_exactly_and_spans_the_range():
    for lo, hi in ((-1.3, 2.9), (0.5, 4.0), (-3.0, -0.25), (0.0, 6.0)):
        t = affine_from_range(lo, hi)
        assert t.to_real(t.quantize(0.0)) == 0.0
        assert t.quantize(min(lo, 0.0)) >= -128 and t.quantize(max(hi, 0.0)) <= 127
        # the whole range is used: both ends land within one step of int8's ends
        assert t.quantize(min(lo, 0.0)) <= -127 and t.quantize(max(hi, 0.0)) >= 126
    assert affine_from_range(0.0, 6.0).zero_point == -128  # a ReLU output: 0 at the bottom
    assert affine_from_range(0.0, 0.0).scale == 1.0


def test_weights_are_per_channel_symmetric_and_zeros_stay_zero():
    w = np.array([[0.5, -0.25, 0.0], [0.0, 0.0, 0.0], [-2.0, 1.0, 0.01]])
    scales = weight_scales(w)
    q = quantize_weights(w, scales)
    assert np.array_equal(q[0], [127, -64, 0]) and np.array_equal(q[1], [0, 0, 0])
    assert np.array_equal(q[2], [-127, 64, 1])
    assert scales[1] == 1.0 and np.isclose(scales[2], 2.0 / 127)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Each model exported dense and at 90 % sparsity (in-process: no interpreter start-up)."""
    folder = tmp_path_factory.mktemp("quant_int8")
    done = {}
    for name, make in MODELS.items():
        model, shape = make()
        torch.save(model, folder / f"{name}.pt")
        x = np.random.default_rng(2).normal(size=(48, *shape))
        for sparsity in (None, 0.9):
            out = folder / f"{name}_{sparsity}"
            graph = load_model(folder / f"{name}.pt", shape)
            export_model(graph, out, x, ExportOptions(quant="tflite-int8", sparsity=sparsity),
                         source=str(folder / f"{name}.pt"))
            done[name, sparsity] = (out, model, x)
    return done


@pytest.mark.parametrize("sparsity", [None, 0.9])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_is_bit_exact_on_every_tensor(exports, name, sparsity):
    out, model, x = exports[name, sparsity]
    report = json.loads((out / "report.json").read_text())
    engines = {"host"} | ({"tflm"} if "tflm" not in report["skipped"] else set())
    assert report["bit_exact"] is True and report["mismatches"] == 0, report
    assert set(report["engines"]) == engines
    if sparsity:
        dense = json.loads((exports[name, None][0] / "report.json").read_text())
        # pruned units are removed (their constant folded into the next bias): fewer weights in all
        assert report["nonzero_weights"] <= 0.1 * dense["total_weights"] + 1
        assert report["c_weight_bytes"] < dense["c_weight_bytes"]
    else:
        assert report["nonzero_weights"] > 0.9 * report["total_weights"]
        with torch.no_grad():  # the dense int8 model still classifies as the float one
            expected = model(torch.tensor(x, dtype=torch.float32)).numpy().argmax(1)
        assert report["fidelity"]["top1_agreement"] >= 0.9
        y = np.load(out / "vectors.npz")["y_int"]
        assert np.mean(y.argmax(1) == expected[: len(y)]) >= 0.9


def test_folder_holds_the_tflite_it_was_verified_with(exports, tmp_path):
    pytest.importorskip("tflite_micro")
    out = exports["cnn", 0.9][0]
    again = export_model(out, tmp_path / "again")  # an int8 folder exported again keeps its file
    assert (again / "model.tflite").read_bytes() == (out / "model.tflite").read_bytes()
    graph = read_tflite(out / "model.tflite", "cnn").graph
    kinds = [layer.kind for layer in graph.layers]
    assert kinds == ["int8_conv2d", "int8_maxpool2d", "int8_conv2d", "int8_conv2d", "int8_avgpool2d", "reshape",
                     "int8_dense", "softmax"]
    assert graph.layers[2].depthwise and graph.layers[0].act_min == graph.layers[0].result_t.zero_point  # fused ReLU
    proc = subprocess.run([sys.executable, "-m", "hwprune", "verify", str(out), "--engine", "tflm", "--engine", "host"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "tflm: bit-exact" in proc.stdout and "host: bit-exact" in proc.stdout


def test_relu6_fuses_and_tflm_agrees(tmp_path):
    """Clip(0, 6) (Keras and ONNX ReLU6) becomes FULLY_CONNECTED's RELU6 clamp."""
    pytest.importorskip("tflite_micro")
    from hwprune.harness.compare import compare
    from hwprune.harness.tflm import TflmEngine

    rng = np.random.default_rng(3)
    g = Graph.chain("r6", (8,), (Dense("d", rng.normal(size=(12, 8)) * 2, rng.normal(size=12)), Clip("c", 0.0, 6.0),
                                 Dense("o", rng.normal(size=(3, 12)), np.zeros(3))))
    x = rng.normal(size=(40, 8))
    q = quantize_tflite_int8(g, x)
    first = q.layers[0]
    # the output type spans the clipped range [0, 6] (the data reach 6), so the clamp is int8's own
    assert (first.act_min, first.act_max) == activation_range("relu6", first.result_t)
    assert first.result_t.zero_point == -128 and np.isclose(first.result_t.to_real(127), 6.0)
    (tmp_path / "r6.tflite").write_bytes(write_tflite(q))
    back = read_tflite(tmp_path / "r6.tflite", "r6").graph
    x_int = q.input_t.quantize(x)
    assert np.array_equal(reference.run(back, x_int), reference.run(q, x_int))
    result = compare(reference.run(back, x_int, trace=True), TflmEngine(tmp_path / "r6.tflite").run(back, x_int).trace,
                     "tflm")
    assert result.bit_exact, result.report()


def test_what_tflite_cannot_express_is_one_error_naming_the_layer():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 8))
    lone = Graph.chain("lone", (8,), (ReLU("r"), Dense("d", rng.normal(size=(2, 8)), np.zeros(2))))
    with pytest.raises(UnsupportedLayerError, match="layer 'r' \\(relu\\): an activation must follow"):
        quantize_tflite_int8(lone, x)
    conv1d = Graph.chain("c1", (8, 1), (Conv1D("c", rng.normal(size=(2, 3, 1)), np.zeros(2)),))
    with pytest.raises(UnsupportedLayerError, match="layer 'c' \\(conv1d\\)"):
        quantize_tflite_int8(conv1d, rng.normal(size=(4, 8, 1)))
    # torch's padding 1 at stride 2 pads (1, 1); TFLite's SAME pads (0, 1) there
    strided = Graph.chain("s2", (8, 8, 1), (Conv2D("c", rng.normal(size=(2, 3, 3, 1)), np.zeros(2), stride=(2, 2),
                                                   padding=((1, 1), (1, 1))),))
    q = quantize_tflite_int8(strided, rng.normal(size=(4, 8, 8, 1)))
    with pytest.raises(ModelError, match="layer 'c': padding .* is neither TFLite's SAME nor VALID"):
        write_tflite(q)


def test_cli_options_refused_in_one_line(tmp_path, capsys):
    from hwprune.cli import main

    model, _ = _mlp()
    torch.save(model, tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(8, 16)))
    base = ["export", str(tmp_path / "m.pt"), "--quant", "tflite-int8",
            "--calibration", str(tmp_path / "x.npy"), "--out", str(tmp_path / "out")]
    for extra, message in ((["--backend", "hls4ml"], "--backend hls4ml does not take TFLite's int8 dialect"),
                           (["--weight-bits", "6"], "--quant tflite-int8 is 8 bits"),
                           (["--format", "csr"], "--format csr: the int8 C stores"),
                           (["--optimize", "size"], "--optimize size: the int8 C stores")):
        code = main(base + extra)
        err = capsys.readouterr().err
        assert code == 2, err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()
