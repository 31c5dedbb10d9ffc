import json
import subprocess
import sys
from pathlib import Path

import pytest


def hwprune(*args, cwd=None, check_exit=None):
    """Run the CLI as a user would; returns (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "hwprune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    if check_exit is not None:
        assert proc.returncode == check_exit, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def cli():
    return hwprune


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
