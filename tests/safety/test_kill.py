"""An export killed with SIGKILL at any moment leaves no folder that verify accepts, and the
next run cleans up what it left."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import manifest
from hwprune.cli import main

# Kill points inside the export: after the folder's content is written but before the
# pending manifest, after the pending manifest, and after the rename but before the
# manifest takes its final name.
KILL_POINTS = {
    "before the manifest": ("hwprune.manifest", "write_pending", "before"),
    "after the pending manifest": ("hwprune.manifest", "write_pending", "after"),
    "between the two renames": ("hwprune.manifest", "finalize", "before"),
}

SCRIPT = textwrap.dedent("""
    import importlib, os, signal, sys
    module, name, when = sys.argv[1:4]
    if module:
        mod = importlib.import_module(module)
        real = getattr(mod, name)
        def killed(*args, **kwargs):
            if when == "after":
                real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        setattr(mod, name, killed)
    from hwprune.cli import main
    sys.exit(main(sys.argv[4:]))
""")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval(), root / "m.pt")
    np.save(root / "x.npy", np.random.default_rng(0).normal(size=(200, 32)))
    return root


def _export(inputs, out, point=("", "", "")):
    args = ["export", str(inputs / "m.pt"), "--calibration", str(inputs / "x.npy"), "--out", str(out)]
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *point, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(Path.cwd())})


def _accepted(folder: Path) -> bool:
    try:
        manifest.check(folder)
    except Exception:
        return False
    return main(["verify", str(folder)]) == 0


def _folders(root: Path):
    return [Path(d) for d, _, _ in os.walk(root)]


@pytest.mark.parametrize("point", list(KILL_POINTS), ids=list(KILL_POINTS))
def test_killed_at_a_step(point, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    proc = _export(inputs, out, KILL_POINTS[point])
    assert proc.wait(timeout=300) == -signal.SIGKILL
    left = [f for f in _folders(tmp_path) if f != tmp_path]
    assert left, "the kill came before anything was written"
    assert not [f for f in left if _accepted(f)]
    # The next export (with --force for a folder the killed one renamed into place) cleans up.
    force = ["--force"] if out.exists() else []
    assert main(["export", str(inputs / "m.pt"), "--calibration", str(inputs / "x.npy"), "--out", str(out),
                 *force]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _accepted(out)
    capsys.readouterr()


def test_killed_at_moments_in_time(inputs, tmp_path, capsys):
    for delay in (0.5, 1.5, 3.0):
        out = tmp_path / f"out{delay}"
        proc = _export(inputs, out)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
        if proc.returncode == 0:
            assert _accepted(out)  # it finished first: then it is complete
    for folder in _folders(tmp_path):
        if folder != tmp_path and not (folder.parent == tmp_path and folder.name.startswith("out")
                                       and (folder / manifest.MANIFEST_FILE).is_file()):
            assert not _accepted(folder), folder
    capsys.readouterr()


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path, monkeypatch):
    from hwprune import tempdirs
    from hwprune.outputs import output_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [tmp_path / f".out.hwprune{dead}-abc.tmp", tmp_path / f"hwprune-build-{dead}-xyz"]
    live = [tmp_path / f".out.hwprune{os.getpid()}-def.tmp", tmp_path / f"hwprune-run-{os.getpid()}-uvw"]
    foreign = tmp_path / ".out.backup.tmp"
    for path in (*stale, *live, foreign):
        path.mkdir()
    monkeypatch.setattr(tempdirs.tempfile, "gettempdir", lambda: str(tmp_path))
    assert tempdirs.clean_stale() == [stale[1]]
    with output_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
    assert not any(p.exists() for p in stale) and all(p.exists() for p in (*live, foreign))
    assert (tmp_path / "out" / manifest.MANIFEST_FILE).is_file()
