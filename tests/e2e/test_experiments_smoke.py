"""Every pruning experiment runs end to end in its quick mode (the numbers are not checked
here: docs/experiments.md holds the full runs)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_experiments_run_quick(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.experiments.run_all", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("schedules", "budget", "criteria", "lottery", "qat", "rewinding", "generality", "storage"):
        data = json.loads((tmp_path / "results" / f"{name}_quick.json").read_text())
        assert data["rows"], name
        assert (tmp_path / "docs" / f"experiments_{name}_quick.md").is_file()
    assert list((tmp_path / "docs" / "figures").glob("*.png"))
