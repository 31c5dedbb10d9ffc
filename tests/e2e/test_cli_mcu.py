"""export --target, verify --engine mcu, predict --engine mcu through the CLI, and the
Cortex-M bad inputs: too big for the target, an unknown core, a missing toolchain."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import ToolchainError
from hwprune.harness.cross import find_cross_cc

try:
    find_cross_cc()
except ToolchainError as exc:  # pragma: no cover - the default install has ziglang
    pytest.skip(f"no Cortex-M toolchain: {exc}", allow_module_level=True)

MCU_FIELDS = ("instructions", "cycles", "latency_us", "energy_uj", "stack_bytes", "arena_bytes")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cli):
    """A 10-20-4 MLP exported for the Cortex-M0+ target (emulated during the export)."""
    tmp = tmp_path_factory.mktemp("mcu_cli")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 4)).eval()
    torch.save(model, tmp / "mlp.pt")
    x = np.random.default_rng(0).normal(size=(12, 10))
    np.save(tmp / "calib.npy", x)
    out = tmp / "m0"
    code, _, stderr = cli("export", tmp / "mlp.pt", "--out", out, "--calibration", tmp / "calib.npy",
                          "--sparsity", "0.6", "--target", "mspm0g3507", check_exit=0)
    assert "cycles" in stderr and "mspm0g3507" in stderr
    return tmp, out


def test_export_for_a_target_reports_the_firmware(exported):
    _, out = exported
    report = json.loads((out / "report.json").read_text())
    assert report["engines"]["mcu"]["bit_exact"] is True
    for key in MCU_FIELDS:
        assert report[key] > 0, key
    assert report["mcu"]["core"] == "cortex-m0plus" and report["mcu"]["vectors"] == 12
    assert report["ram_bytes"] == report["mcu"]["static_ram_bytes"] + report["stack_bytes"]
    assert report["flash_bytes"] == report["mcu"]["flash_bytes"]
    dense = [row for row in report["layers"] if row["kind"] == "dense"]
    assert all(row["cycles"] > 0 and row["instructions"] > 0 for row in dense)
    assert "## Cortex-M firmware" in (out / "report.md").read_text()
    assert (out / "report_mcu.png").stat().st_size > 1000


def test_verify_runs_mcu_by_default_and_engines_can_be_chosen(exported, cli):
    _, out = exported
    _, stdout, _ = cli("verify", out, "--json", check_exit=0)
    report = json.loads(stdout)
    assert report["bit_exact"] and report["engines"]["mcu"]["bit_exact"] and report["engines"]["host"]["bit_exact"]
    assert all(key in report for key in MCU_FIELDS)
    _, stdout, _ = cli("verify", out, "--json", "--engine", "host", check_exit=0)
    report = json.loads(stdout)
    assert "mcu" not in report["engines"] and "cycles" not in report
    _, stdout, _ = cli("verify", out, "--engine", "mcu", "--engine", "host", "--target", "stm32l4r5", check_exit=0)
    assert "stm32l4r5 (cortex-m4)" in stdout and "mcu        bit-exact" in stdout


def test_predict_with_the_mcu_engine_equals_the_reference(exported, cli):
    tmp, out = exported
    for engine in ("mcu", "reference"):
        cli("predict", out, "--inputs", tmp / "calib.npy", "--out", tmp / f"{engine}.npy", "--engine", engine,
            "--force", check_exit=0)
    assert np.array_equal(np.load(tmp / "mcu.npy"), np.load(tmp / "reference.npy"))


def test_a_model_too_big_for_the_target_is_exit_2_and_writes_nothing(exported, cli, tmp_path):
    _, out = exported
    small = tmp_path / "small.toml"
    small.write_text('name = "small"\nkind = "mcu"\ndescription = "d"\ncpu = "cortex-m0plus"\nflash_kib = 1\n'
                     'ram_kib = 1\nclock_mhz = 16\nenergy_nj_per_cycle = 0.2\n')
    code, _, stderr = cli("export", out, "--target", small, "--format", "dense", "--out", tmp_path / "too_big",
                          check_exit=2)
    assert len(stderr.strip().splitlines()) == 1
    assert "does not fit small" in stderr and "flash" in stderr and "> 1024 B" in stderr
    assert not (tmp_path / "too_big").exists()
    assert not list(tmp_path.glob(".too_big*"))


def test_an_unknown_core_is_exit_2(exported, cli, tmp_path):
    _, out = exported
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nkind = "mcu"\ndescription = "d"\ncpu = "cortex-m9"\nflash_kib = 64\n'
                   'ram_kib = 8\nclock_mhz = 16\nenergy_nj_per_cycle = 0.2\n')
    _, _, stderr = cli("export", out, "--target", bad, "--out", tmp_path / "x", check_exit=2)
    assert "unknown core" in stderr and "cortex-m9" in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is not None, reason="arm-none-eabi-gcc is installed")
def test_engine_mcu_without_its_toolchain_is_exit_2(exported, cli):
    import os
    import subprocess
    import sys

    _, out = exported
    env = {**os.environ, "HWPRUNE_MCU_CC": "gcc"}
    proc = subprocess.run([sys.executable, "-m", "hwprune", "verify", str(out), "--engine", "mcu"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "arm-none-eabi-gcc" in proc.stderr


def test_optimize_speed_for_a_cortex_m_target_uses_the_cycles_the_emulator_measured(exported, cli):
    tmp, _ = exported
    out = tmp / "speed"
    cli("export", tmp / "mlp.pt", "--out", out, "--calibration", tmp / "calib.npy", "--sparsity", "0.6",
        "--target", "mspm0g3507", "--optimize", "speed", check_exit=0)
    optimize = json.loads((out / "c" / "export.json").read_text())["optimize"]
    assert optimize["goal"] == "speed" and "measured_cycles" in optimize, optimize
    formats = json.loads((out / "export.json").read_text())["formats"]
    assert {key.rpartition(":")[0] for key in optimize["measured_cycles"]} == set(formats)
    assert all(isinstance(c, int) and c > 0 for c in optimize["measured_cycles"].values())
