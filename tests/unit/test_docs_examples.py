"""The worked examples of docs/architecture.md run as written: each ``python`` block is a
complete program, run in a fresh interpreter (it registers a layer kind, a format, a
backend or an engine, which must not leak into the other tests)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)


def test_the_page_has_its_four_examples():
    assert len(BLOCKS) == 4
    for needle in ("@kernel(", "register_format(", "register_backend(", "register_engine("):
        assert sum(needle in block for block in BLOCKS) == 1, needle


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=["layer", "format", "backend", "engine"][:len(BLOCKS)])
def test_example_runs(index, tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_failing_example_fails(tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCKS[0] + "\nassert False, 'the check is live'\n"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode != 0 and "the check is live" in done.stderr
