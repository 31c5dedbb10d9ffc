"""export -> verify -> predict on a torch MLP no other test uses, and every bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.data import load_dataset
from hwprune.prune.train import fit


@pytest.fixture(scope="module")
def wine_model(tmp_path_factory):
    """13-23-9-3 MLP on sklearn's wine set; one hidden neuron has an all-zero weight row."""
    tmp = tmp_path_factory.mktemp("wine")
    data = load_dataset("wine", seed=3)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(13, 23), nn.ReLU(), nn.Dropout(0.1), nn.Linear(23, 9), nn.ReLU(),
                          nn.Linear(9, 3), nn.Softmax(dim=1))
    fit(model[:-1], data.x_train, data.y_train, epochs=30, lr=3e-3, seed=3)
    with torch.no_grad():
        model[3].weight[4] = 0.0
    model.eval()
    torch.save(model, tmp / "wine.pt")
    np.save(tmp / "calib.npy", data.x_train)
    np.save(tmp / "test.npy", data.x_test)
    with torch.no_grad():
        logits = model[:-1](torch.tensor(data.x_test, dtype=torch.float32)).numpy()
    return tmp, logits


def test_export_verify_predict(cli, wine_model, tmp_path):
    src, torch_logits = wine_model
    out = tmp_path / "wine_c"
    # --keep-dead-neurons: the all-zero row reaches the C code (by default it is removed).
    cli("export", src / "wine.pt", "--out", out, "--calibration", src / "calib.npy", "--sparsity", "0.5",
        "--keep-dead-neurons", check_exit=0)
    for name in ("graph.json", "weights.npz", "vectors.npz", "export.json", "report.md", "report.json",
                 "report.png", "c/model.h", "c/model.c"):
        assert (out / name).is_file(), name

    code, stdout, _ = cli("verify", out, "--json", "--inputs", src / "test.npy", check_exit=0)
    report = json.loads(stdout)
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["vectors"] == len(torch_logits)
    for key in ("flash_bytes", "ram_bytes", "macs", "nonzero_weights", "total_weights"):
        assert isinstance(report[key], int) and report[key] > 0, key
    assert report["total_weights"] == 13 * 23 + 23 * 9 + 9 * 3
    assert report["nonzero_weights"] <= report["total_weights"] // 2 + 3
    dense = [l for l in report["layers"] if l["kind"] == "dense"]
    assert len(dense) == 3
    for layer in dense:
        for key in ("name", "kind", "format", "total_weights", "nonzero_weights", "weight_bytes", "bits_per_nonzero"):
            assert key in layer, key
        assert layer["bits_per_nonzero"] == pytest.approx(layer["weight_bytes"] * 8 / layer["nonzero_weights"])
    assert report["engines"]["host"]["available"] and report["engines"]["host"]["bit_exact"]

    cli("predict", out, "--inputs", src / "test.npy", "--out", tmp_path / "y_host.npy", "--engine", "host",
        check_exit=0)
    cli("predict", out, "--inputs", src / "test.npy", "--out", tmp_path / "y_ref.npy", check_exit=0)
    y_host = np.load(tmp_path / "y_host.npy")
    y_ref = np.load(tmp_path / "y_ref.npy")
    assert y_host.dtype == np.float32 and y_host.shape == torch_logits.shape
    assert np.array_equal(y_host, y_ref)
    # Pruned to 50 % and quantized to 8 bits: still the float model's decisions.
    agreement = np.mean(y_host.argmax(axis=1) == torch_logits.argmax(axis=1))
    assert agreement >= 0.95, agreement

    cli("report", out, check_exit=0)
    assert "bit-exact" in (out / "report.md").read_text()


def test_dead_neurons_are_removed_by_default(cli, wine_model, tmp_path):
    src, torch_logits = wine_model
    cli("export", src / "wine.pt", "--out", tmp_path / "w", "--calibration", src / "calib.npy", check_exit=0)
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    assert report["removed_neurons"] == {"dense_3": 1}
    assert report["total_weights"] == 13 * 23 + 23 * 8 + 8 * 3
    assert report["bit_exact"]
    cli("predict", tmp_path / "w", "--inputs", src / "test.npy", "--out", tmp_path / "y.npy", "--engine", "host",
        check_exit=0)
    assert np.mean(np.load(tmp_path / "y.npy").argmax(axis=1) == torch_logits.argmax(axis=1)) >= 0.95


def test_export_of_the_shipped_hls4ml_torch_model(cli, tmp_path):
    """The hls4ml example jet tagger (tests/data) on random calibration inputs, csr forced."""
    data = Path(__file__).parents[1] / "data"
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).normal(size=(400, 16)))
    _, _, err = cli("export", data / "three_layer_model.pt", "--out", tmp_path / "jet", "--calibration",
                    tmp_path / "calib.npy", "--format", "csr", "--sparsity", "0.8", "--trust-model", check_exit=0)
    assert "warning:" in err and "--trust-model" in err  # a legacy pickle: read only with trust, and said so
    code, stdout, _ = cli("verify", tmp_path / "jet", "--json", check_exit=0)
    report = json.loads(stdout)
    assert report["bit_exact"] and report["vectors"] == 400
    assert {l["format"] for l in report["layers"] if l["kind"] == "dense"} == {"csr"}
    assert report["csr_weight_bytes"] < report["dense_weight_bytes"]


def _bad(cli, tmp_path, args, message):
    out = tmp_path / "out"
    code, stdout, stderr = cli(*args, "--out", out)
    assert code == 2, (code, stderr)
    assert message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr  # one line, no traceback
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "temporary folder left behind"


def test_unsupported_layer(cli, tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.zeros((8, 4)))
    # GELU is outside the safe loader's allow-list: refused before anything is unpickled ...
    _bad(cli, tmp_path, ["export", tmp_path / "m.pt", "--calibration", tmp_path / "x.npy"],
         "holds torch.nn.modules.activation.GELU")
    # ... and with --trust-model the frontend names it
    code, _, stderr = cli("export", tmp_path / "m.pt", "--calibration", tmp_path / "x.npy", "--trust-model",
                          "--out", tmp_path / "out")
    assert code == 2 and "module '1' (GELU) is not supported" in stderr and not (tmp_path / "out").exists()


def test_nan_weights(cli, tmp_path):
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight[1, 2] = float("nan")
    torch.save(model, tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.zeros((8, 4)))
    _bad(cli, tmp_path, ["export", tmp_path / "m.pt", "--calibration", tmp_path / "x.npy"],
         "module '0' (Linear): weight has a non-finite value nan at index (1, 2)")


@pytest.fixture
def small_model(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(16, 4)))
    return tmp_path / "m.pt", tmp_path / "x.npy"


def test_calibration_shape(cli, tmp_path, small_model):
    np.save(tmp_path / "wrong.npy", np.zeros((8, 5)))
    _bad(cli, tmp_path, ["export", small_model[0], "--calibration", tmp_path / "wrong.npy"],
         f"calibration inputs ({tmp_path / 'wrong.npy'}) have shape (8, 5); model 'm' expects (N, 4)")


@pytest.mark.parametrize("sparsity", ["1.0", "-0.1", "1.5"])
def test_sparsity_range(cli, tmp_path, small_model, sparsity):
    _bad(cli, tmp_path, ["export", small_model[0], "--calibration", small_model[1], "--sparsity", sparsity],
         "--sparsity must be in [0, 1)")


def test_existing_output_needs_force(cli, tmp_path, small_model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = cli("export", small_model[0], "--calibration", small_model[1], "--out", out)
    assert code == 2 and "exists already; pass --force" in stderr
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces only a folder hwprune wrote: this one is the user's
    code, _, stderr = cli("export", small_model[0], "--calibration", small_model[1], "--out", out, "--force")
    assert code == 2 and "--force will not replace" in stderr and (out / "keep.txt").read_text() == "mine"
    mine = tmp_path / "mine"
    cli("export", small_model[0], "--calibration", small_model[1], "--out", mine, check_exit=0)
    cli("export", small_model[0], "--calibration", small_model[1], "--out", mine, "--force", check_exit=0)
    assert (mine / "c" / "model.c").is_file()


def test_unknown_target_and_malformed_model(cli, tmp_path, small_model):
    _bad(cli, tmp_path, ["export", small_model[0], "--calibration", small_model[1], "--target", "pdp11"],
         "unknown target 'pdp11'")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    _bad(cli, tmp_path, ["export", tmp_path / "junk.pt", "--calibration", small_model[1]],
         "not a readable torch model file")


def test_targets_lists_the_shipped_chips(cli):
    code, stdout, _ = cli("targets", "--json", check_exit=0)
    targets = json.loads(stdout)
    assert targets["stm32l4r5"]["energy_nj_per_cycle"] == pytest.approx(0.358)
    assert targets["xc7z020"]["dsp"] == 220


def test_reexport_an_export_folder_in_another_format(cli, small_model, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    cli("export", small_model[0], "--calibration", small_model[1], "--out", first, "--format", "csr", check_exit=0)
    cli("export", first, "--out", second, "--format", "dense", check_exit=0)
    a, b = np.load(first / "vectors.npz"), np.load(second / "vectors.npz")
    assert np.array_equal(a["x_int"], b["x_int"]) and np.array_equal(a["y_int"], b["y_int"])
    report = json.loads((second / "report.json").read_text())
    assert report["bit_exact"] and {l["format"] for l in report["layers"] if l["format"]} == {"dense"}
    code, _, stderr = cli("export", first, "--out", tmp_path / "third", "--weight-bits", "4")
    assert code == 2 and "quantized already" in stderr and not (tmp_path / "third").exists()


def test_verify_names_missing_sources(cli, small_model, tmp_path):
    out = tmp_path / "e"
    cli("export", small_model[0], "--calibration", small_model[1], "--out", out, check_exit=0)
    (out / "c" / "model.c").unlink()
    code, _, stderr = cli("verify", out)
    assert code == 2 and "c/model.c is listed in hwprune-manifest.json but missing" in stderr, stderr


def test_a_model_starting_with_flatten_takes_its_input_shape_from_the_calibration(cli, tmp_path):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2)), tmp_path / "f.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(40, 3, 4)))
    cli("export", tmp_path / "f.pt", "--calibration", tmp_path / "x.npy", "--out", tmp_path / "e", check_exit=0)
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["bit_exact"] and report["layers"][0]["kind"] == "flatten"
    assert report["layers"][0]["input_shape"] == [3, 4]
    _bad(cli, tmp_path, ["export", tmp_path / "f.pt"], "pass input_shape (hwprune export takes it from --calibration)")


def _training_graph(path: Path, rng) -> tuple[np.ndarray, np.ndarray]:
    """A TF1-style training graph: logits = data @ W + b, and its only output the accuracy
    against a second input (the labels); the weights, returned for the logits' oracle."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["data", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"]),
             helper.make_node("ArgMax", ["probs"], ["predicted"], axis=1),
             helper.make_node("ArgMax", ["labels"], ["truth"], axis=1),
             helper.make_node("Equal", ["predicted", "truth"], ["hit"]),
             helper.make_node("Cast", ["hit"], ["hit_f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["hit_f"], ["accuracy"], keepdims=0)]
    graph = helper.make_graph(nodes, "train", [helper.make_tensor_value_info("labels", TensorProto.FLOAT, ["n", 3]),
                                               helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 6])],
                              [helper.make_tensor_value_info("accuracy", TensorProto.FLOAT, [])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return w, b


def test_output_cuts_an_onnx_training_graph_at_its_logits(cli, tmp_path):
    rng = np.random.default_rng(4)
    w, b = _training_graph(tmp_path / "train.onnx", rng)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    base = ["export", tmp_path / "train.onnx", "--calibration", tmp_path / "x.npy", "--weight-bits", "16",
            "--activation-bits", "16"]
    code, _, stderr = cli(*base, "--out", tmp_path / "whole")
    assert code == 2 and "takes 2 inputs" in stderr and not (tmp_path / "whole").exists()
    # a name that is no tensor of the file: one line naming it and the likely ones, nothing written
    code, _, stderr = cli(*base, "--out", tmp_path / "bad", "--output", "logit")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, stderr
    assert "'logit' is not a tensor" in lines[0] and "'logits'" in lines[0] and "'labels'" not in lines[0]
    assert not (tmp_path / "bad").exists()
    cli(*base, "--out", tmp_path / "cut", "--output", "logits", check_exit=0)
    assert json.loads((tmp_path / "cut" / "report.json").read_text())["bit_exact"] is True
    with np.load(tmp_path / "cut" / "vectors.npz") as vectors:
        y = vectors["y_int"].reshape(len(x), -1)
    assert y.shape == (16, 3)  # the logits, not the accuracy
    assert np.array_equal(np.argmax(y, axis=1), np.argmax(x @ w + b, axis=1))
