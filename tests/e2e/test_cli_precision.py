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
