"""The README's Python example runs as written."""

import json
import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    report = json.loads((tmp_path / "net_c" / "report.json").read_text())
    assert report["bit_exact"] and report["vectors"] == 360
    # 90 % of the quantized graph's MACs (its weights: an MLP) sit on zero weights; the export then
    # removes the units global pruning left dead, so it is a little less sparse and smaller
    dead = report["dead_channels"]
    assert abs(1 - dead["nonzero_macs_before"] / dead["macs_before"] - 0.9) < 1e-3
    assert report["total_weights"] == dead["macs_after"] <= dead["macs_before"] == 64 * 128 + 128 * 64 + 64 * 10
