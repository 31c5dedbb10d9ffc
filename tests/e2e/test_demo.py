"""``hwprune demo`` end to end, with the figures the README promises."""

import json


def test_demo(cli, tmp_path):
    out = tmp_path / "demo"
    cli("demo", "--out", out, check_exit=0)
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["vectors"] >= 360
    assert report["engines"]["host"]["available"] and report["engines"]["host"]["bit_exact"]
    stages = {s["stage"]: s for s in report["stages"]}
    dense = stages["dense float"]["accuracy"]
    final = report["stages"][-1]
    assert final["sparsity"] >= 0.9 - 1e-3
    assert (dense - final["accuracy"]) * 100 <= 1.5, report["stages"]
    assert report["csr_weight_bytes"] < report["dense_weight_bytes"]
    assert report["weight_bytes"] < report["dense_weight_bytes"]
    assert report["macs_sparse"] < report["macs"] / 5
    # The default target: the firmware ran in the Cortex-M4 emulator, bit for bit, and
    # pruning pays on the chip in cycles and flash against every layer stored dense.
    assert report["engines"]["mcu"]["bit_exact"] and report["mcu"]["target"] == "stm32l4r5"
    baseline = report["mcu"]["dense_baseline"]
    assert report["cycles"] < 0.5 * baseline["cycles"] and report["flash_bytes"] < 0.5 * baseline["flash_bytes"]
    md = (out / "report.md").read_text()
    assert "Accuracy at each stage" in md and "bit-exact" in md
    assert (out / "c" / "model.c").is_file() and (out / "report.png").is_file()

    # The demo's folder is a complete export: verify accepts it, and it re-exports.
    code, stdout, err = cli("verify", out, "--json")
    assert code == 0 and json.loads(stdout)["bit_exact"], err
    cli("export", out, "--format", "csr", "--out", tmp_path / "again", check_exit=0)

    code, _, stderr = cli("demo", "--out", out)
    assert code == 2 and "pass --force" in stderr
