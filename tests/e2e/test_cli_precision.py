"""Types as an hls4ml user writes them: ``export --precision``, ``--config``,
``--write-config``; C simulation and the host C must equal the integer reference with the
user's types (narrow, rounding, saturating and wrapping), and a written configuration
read back must give the same graph."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hwprune.data import load_dataset
from hwprune.prune.train import fit, make_mlp

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 64-8-10 digits MLP (small: g++ time grows with the model), trained briefly."""
    root = tmp_path_factory.mktemp("precision")
    d = load_dataset("digits", seed=0)
    np.save(root / "calibration.npy", d.x_test[:64])
    model = make_mlp((64, 8, 10), seed=0)
    fit(model, d.x_train[:256], d.y_train[:256], epochs=3, lr=3e-3)
    torch.save(model, root / "model.pt")
    return root


def _export(cli, root, out, *flags, exit_code=0):
    return cli("export", root / "model.pt", "--calibration", root / "calibration.npy", "--out", root / out, *flags,
               check_exit=exit_code)


def _types(folder: Path) -> dict:
    graph = json.loads((folder / "graph.json").read_text())
    return {layer["name"]: {k: v for k, v in layer.items() if k.endswith("_t")} for layer in graph["layers"]}


@needs_gxx
def test_uniform_precision_is_every_type_and_bit_exact_in_csim(small, cli):
    _, _, err = _export(cli, small, "uniform", "--backend", "hls4ml", "--precision", "ap_fixed<10,5,AP_RND,AP_SAT>")
    folder = small / "uniform"
    graph = json.loads((folder / "graph.json").read_text())
    assert graph["inputs"][0]["t"] == "fixed<10,5,RND,SAT>"
    for types in _types(folder).values():  # the accumulator too, as hls4ml does with a model-wide type
        assert set(types.values()) == {"fixed<10,5,RND,SAT>"}, types
    code, stdout, stderr = cli("verify", folder, "--json")
    report = json.loads(stdout)
    assert code == 0, stderr
    assert report["engines"]["hls4ml"]["bit_exact"] and report["engines"]["hls4ml"]["mismatches"] == 0
    # 5 fraction bits zero the smallest weights: the warning names the layer and the bits lost
    assert "warning: layer 'dense_0' weights: " in err and "round to zero in fixed<10,5,RND,SAT>" in err


@needs_gxx
def test_config_per_layer_types_reuse_and_strategy_round_trip(small, cli, tmp_path):
    dense = ["dense_0", "dense_2"]  # make_mlp's Linear layers, as hwprune names them
    config = {"Model": {"Precision": "fixed<12,6>", "ReuseFactor": 1, "Strategy": "Latency"},
              "LayerName": {dense[0]: {"Precision": {"weight": "fixed<6,1,RND,SAT>", "accum": "auto", "result": "auto"},
                                       "ReuseFactor": 2, "Strategy": "Resource"},
                            dense[-1]: {"Precision": {"accum": "fixed<14,7,TRN,SAT>"}}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    written = tmp_path / "written.json"
    _export(cli, small, "configured", "--backend", "hls4ml", "--config", path, "--write-config", written)
    folder = small / "configured"
    types = _types(folder)
    assert types[dense[0]]["weight_t"] == "fixed<6,1,RND,SAT>"
    assert types[dense[0]]["bias_t"] == "fixed<12,6,TRN,WRAP>"  # the model's default
    assert types[dense[0]]["accum_t"] != "fixed<12,6,TRN,WRAP>"  # auto: calibrated, exact
    assert types[dense[-1]]["accum_t"] == "fixed<14,7,TRN,SAT>"
    hls = json.loads((folder / "hls4ml" / "hwprune_hls4ml.json").read_text())["options"]
    assert hls["layers"] == {dense[0]: {"strategy": "resource", "reuse_factor": 2}}
    code, stdout, stderr = cli("verify", folder, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["engines"]["hls4ml"]["bit_exact"]

    # what --write-config wrote, read back: the same graph, byte for byte
    back = json.loads(written.read_text())
    assert back["LayerName"][dense[0]] == {"Precision": {"weight": "fixed<6,1,RND,SAT>", "bias": "fixed<12,6,TRN,WRAP>",
                                                          "accum": types[dense[0]]["accum_t"],
                                                          "result": types[dense[0]]["result_t"]},
                                            "ReuseFactor": 2, "Strategy": "Resource"}
    _export(cli, small, "again", "--backend", "hls4ml", "--config", written, "--no-compile")
    for name in ("graph.json", "weights.npz"):
        assert (folder / name).read_bytes() == (small / "again" / name).read_bytes(), name


def test_calibrated_config_round_trips_on_the_c_backend(small, cli, tmp_path):
    first = tmp_path / "chosen.yaml"
    _export(cli, small, "calibrated", "--no-compile", "--write-config", first)
    _export(cli, small, "recalibrated", "--no-compile", "--config", first)
    for name in ("graph.json", "weights.npz"):
        assert (small / "calibrated" / name).read_bytes() == (small / "recalibrated" / name).read_bytes(), name


def test_narrow_user_types_are_bit_exact_on_the_host(small, cli):
    # wrapping accumulators and truncating results: the C kernels' general path; digits
    # pixels reach 1.0, which a signed type with one integer bit cannot hold
    _, _, err = _export(cli, small, "narrow", "--precision", "fixed<7,1>")
    assert "bit-exact" in err and "NOT bit-exact" not in err
    assert "warning: input: " in err and "wrap around in fixed<7,1,TRN,WRAP>" in err
    assert "needs 2 integer bits, the type has 1: 1 bit lost" in err


@pytest.mark.parametrize("flags, message", [
    (["--precision", "fixed<16>"], "cannot read fixed-point type 'fixed<16>'"),
    (["--precision", "fixed<16,6,RND_ZERO>"], "fixed<16,6,RND_ZERO>"),
    (["--precision", "fixed<16,6>", "--weight-bits", "8"], "--precision sets every type"),
    (["--config", "nope.yaml"], "no such file"),
    (["--write-config", "x.txt"], "name a .yaml, .yml, .json, .toml file"),
])
def test_bad_precision_input_is_one_line_exit_2_nothing_written(small, cli, flags, message):
    code, _, err = _export(cli, small, "bad", *flags, "--no-compile", exit_code=2)
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (small / "bad").exists()


def test_config_naming_an_unknown_layer_is_refused(small, cli, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[LayerName.fc9.Precision]\nweight = "fixed<8,2>"\n')
    code, _, err = _export(cli, small, "bad", "--config", path, "--no-compile", exit_code=2)
    assert "no layer named 'fc9'" in err and len(err.strip().splitlines()) == 1
    assert not (small / "bad").exists()


def _constants_onnx(path: Path) -> None:
    """Every layer kind with a constant type: LeakyReLU and PReLU (``param``), HardSigmoid
    (``slope``, ``shift``), a BatchNorm between two activations (``scale``, unfoldable),
    Tanh, Sigmoid and Selu (``table``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    arrays = {f"w{i}": rng.normal(size=(6, 6)) for i in range(5)}
    arrays.update(slope=np.linspace(-0.3, 0.6, 6), scale=rng.uniform(-2, 2, 6), bias=rng.normal(size=6),
                  mean=rng.normal(size=6) * 0.3, var=rng.uniform(0.5, 2, 6))
    inits = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in arrays.items()]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["m0"]), helper.make_node("LeakyRelu", ["m0"], ["a0"], alpha=0.1),
             helper.make_node("MatMul", ["a0", "w1"], ["m1"]), helper.make_node("PRelu", ["m1", "slope"], ["a1"]),
             helper.make_node("HardSigmoid", ["a1"], ["a2"]),
             helper.make_node("BatchNormalization", ["a2", "scale", "bias", "mean", "var"], ["bn"]),
             helper.make_node("Tanh", ["bn"], ["a3"]), helper.make_node("MatMul", ["a3", "w2"], ["m2"]),
             helper.make_node("Sigmoid", ["m2"], ["a4"]), helper.make_node("MatMul", ["a4", "w3"], ["m3"]),
             helper.make_node("Selu", ["m3"], ["a5"]), helper.make_node("MatMul", ["a5", "w4"], ["y"])]
    graph = helper.make_graph(nodes, "constants", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 6])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_written_config_round_trips_every_constant_type(cli, tmp_path):
    """--write-config then --config on a model with every layer kind that has a constant
    type: the same graph and weights byte for byte; an edited constant type takes effect."""
    pytest.importorskip("onnx")
    model, x = tmp_path / "m.onnx", tmp_path / "x.npy"
    _constants_onnx(model)
    np.save(x, np.random.default_rng(8).normal(size=(64, 6)) * 2)
    written = tmp_path / "chosen.yaml"

    def export(out, *flags):
        return cli("export", model, "--calibration", x, "--out", tmp_path / out, "--no-compile", *flags)

    export("first", "--write-config", written)
    config = yaml.safe_load(written.read_text())
    keys = {key for entry in config["LayerName"].values() for key in entry["Precision"]}
    assert {"param", "scale", "slope", "shift", "table"} <= keys, keys
    layers = json.loads((tmp_path / "first" / "graph.json").read_text())["layers"]
    kinds = {layer["kind"] for layer in layers}
    assert {"leaky_relu", "hard_sigmoid", "batchnorm", "tanh", "sigmoid", "selu"} <= kinds, kinds
    export("again", "--config", written)
    for name in ("graph.json", "weights.npz"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name

    # an edited PReLU slope type is the one calibration keeps (in process: no third export)
    from hwprune.frontends.onnx import load_onnx
    from hwprune.quant.calibrate import calibrate
    from hwprune.quant.precision import parse_config

    prelu = [layer["name"] for layer in layers if layer["kind"] == "leaky_relu"][-1]  # the PRelu node
    config["LayerName"][prelu]["Precision"]["param"] = "fixed<6,1,RND,SAT>"
    graph = calibrate(load_onnx(model, "m"), np.load(x).astype(np.float32), spec=parse_config(config, "edited"))
    assert str(graph.layer(prelu).param_t) == "fixed<6,1,RND,SAT>"
