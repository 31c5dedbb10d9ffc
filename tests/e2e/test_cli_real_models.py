"""Public models that nobody on the project wrote, through the CLI as a user runs them."""

import json
from pathlib import Path

import numpy as np
import pytest

from hwprune.errors import ToolchainError
from hwprune.harness.cross import find_cross_cc

DATA = Path(__file__).resolve().parents[1] / "data"


def _cross_cc_or_skip():
    try:
        find_cross_cc()
    except ToolchainError as exc:  # pragma: no cover - the default install has ziglang
        pytest.skip(f"no Cortex-M toolchain: {exc}")


def test_keras_conv1d_small_builds_and_is_bit_exact_on_m0plus_m4_m7(cli, tmp_path):
    """Its convolutions have 3 filters or fewer: the DSP build once failed on an unused variable."""
    _cross_cc_or_skip()
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).normal(size=(16, 10, 4)))
    out = tmp_path / "conv1d"
    cli("export", DATA / "KERAS_conv1d_small.json", "--weights", DATA / "KERAS_conv1d_small_weights.h5",
        "--calibration", tmp_path / "calib.npy", "--target", "stm32l4r5", "--out", out, check_exit=0)
    report = json.loads((out / "report.json").read_text())
    assert report["engines"]["mcu"]["bit_exact"] and report["mcu"]["core"] == "cortex-m4"
    for target, core in (("mspm0g3507", "cortex-m0plus"), ("pic32czca90", "cortex-m7")):
        _, stdout, _ = cli("verify", out, "--engine", "mcu", "--target", target, "--json", check_exit=0)
        result = json.loads(stdout)
        assert result["engines"]["mcu"]["bit_exact"] and result["mismatches"] == 0
        assert result["mcu"]["core"] == core


def test_a_whole_model_h5_exports_bit_exact(cli, tmp_path):
    """``model.save('x.h5')`` of Keras 2 (the jet tagger's JSON as ``model_config``, its weights
    under ``model_weights``): no --weights needed."""
    import h5py

    h5 = tmp_path / "jet_tagger.h5"
    with h5py.File(h5, "w") as f, h5py.File(DATA / "KERAS_3layer_weights.h5", "r") as weights:
        f.attrs["model_config"] = (DATA / "KERAS_3layer.json").read_bytes()
        group = f.create_group("model_weights")
        for key, value in weights.attrs.items():
            group.attrs[key] = value
        for key in weights:
            weights.copy(weights[key], group, key)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(64, 16)))
    _, _, err = cli("export", h5, "--calibration", tmp_path / "x.npy", "--out", tmp_path / "e", check_exit=0)
    assert "bit-exact" in err
    code, _, err = cli("export", h5, "--weights", DATA / "KERAS_3layer_weights.h5", "--out", tmp_path / "f")
    assert code == 2 and "drop --weights" in err
