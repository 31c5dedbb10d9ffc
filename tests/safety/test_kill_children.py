"""An export killed while a tool runs (hls4ml's build_lib.sh and its g++, zig's clang) leaves
no process of its own behind: SIGKILL (nothing of hwprune runs: the kernel's parent-death
signal and the reaper do it) and SIGTERM (hwprune kills the process groups itself)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")


def _processes() -> dict:
    """pid -> (parent pid, start time, state, command line) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[19], fields[0], cmdline)
    return table


def _descendants(root: int) -> dict:
    table = _processes()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start, state, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = (start, cmdline)
                frontier.append(pid)
    return found


def _alive(pid: int, start: str) -> bool:
    """The same process (not a reused pid), and not a zombie waiting for init to reap it."""
    entry = _processes().get(pid)
    return entry is not None and entry[1] == start and entry[2] != "Z"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("children")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5)).eval(), root / "m.pt")
    np.save(root / "x.npy", np.random.default_rng(0).normal(size=(40, 16)))
    return root


def _kill_during(proc, tools, sig) -> None:
    """Wait until one of ``tools`` runs under ``proc``, send ``sig``, and check that every
    process that ran under it is gone within 1 s (long before the tool would finish)."""
    seen: dict = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        seen.update(_descendants(proc.pid))
        if any(tool in cmdline for _, cmdline in seen.values() for tool in tools):
            time.sleep(0.05)  # let the tool start its own children
            seen.update(_descendants(proc.pid))
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the export ended before {tools} ran (exit {proc.returncode})"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    running = seen
    for _ in range(10):
        running = {pid: info for pid, info in seen.items() if _alive(pid, info[0])}
        if not running:
            break
        time.sleep(0.1)
    assert not running, f"{len(running)} processes outlived the export: {[c for _, c in running.values()]}"


# A tool that would run a minute and leaves a grandchild: a shell with a sleep in the
# background and one in the foreground, run as hwprune runs every tool.
CALLER = """
import signal, sys
from hwprune import children
from hwprune.cli import _terminate
signal.signal(signal.SIGTERM, _terminate)
children.run(["bash", "-c", "sleep 61 & sleep 62; wait"])
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_tool_and_its_children_die_with_the_caller(sig):
    proc = subprocess.Popen([sys.executable, "-c", CALLER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_during(proc, ("sleep 61",), sig)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_an_hls4ml_export_during_g_plus_plus_leaves_no_process(sig, model, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    env = {**os.environ, "HWPRUNE_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "hwprune", "export", str(model / "m.pt"), "--calibration",
                             str(model / "x.npy"), "--out", str(tmp_path / "out"), "--backend", "hls4ml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _kill_during(proc, ("cc1plus",), sig)
