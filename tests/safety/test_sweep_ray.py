"""A local sweep's Ray listens on loopback only and keeps its token private; SIGTERM ends
the sweep with one line, exit 143, Ray shut down and the sweep it was replacing (--force)
untouched."""

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.sweep.runner import ray_token_path
from tests.safety.conftest import snapshot

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]


def _tree(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        found.append(here)
        todo += [child for child, parent in parents.items() if parent == here]
    return found


def _listening(pid: int) -> list[tuple[str, int]]:
    """The TCP sockets ``pid`` listens on (its fds matched against /proc/<pid>/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    found = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or int(fields[9]) not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
            found.append((socket.inet_ntop(family, raw), int(port, 16)))
    return found


def _loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def test_sweep_ray_listens_on_loopback_only_and_sigterm_ends_it(tmp_path):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).eval(), tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 6)).astype(np.float32), y=np.arange(60) % 3)
    old = tmp_path / "s"  # a previous sweep, which --force must leave whole until the new one is done
    (old / "trials" / "t").mkdir(parents=True)
    (old / "sweep-spec.json").write_text(json.dumps({"fingerprint": "old"}))
    (old / "trials" / "t" / "result.json").write_text("{}")
    (old / "sweep.json").write_text("{}")
    before = snapshot(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "hwprune", "sweep", str(tmp_path / "m.pt"), "--data",
                             str(tmp_path / "d.npz"), "--sparsity", "0.5,0.6,0.7,0.8", "--seeds", "2", "--epochs", "30",
                             "--target", "host", "--min-accuracy", "0", "--workers", "1", "--out", str(old), "--force"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, sockets, names = time.time() + 120, {}, set()
        while time.time() < deadline and proc.poll() is None:
            for pid in _tree(proc.pid):
                try:
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    sockets[(pid, name)] = _listening(pid)
                    names.add(name)
                except OSError:
                    pass
            if "gcs_server" in names and "raylet" in names and any(n.startswith("ray::") for n in names):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # the workers' servers are up
        for pid in _tree(proc.pid):
            try:
                sockets[(pid, Path(f"/proc/{pid}/comm").read_text().strip())] = _listening(pid)
            except OSError:
                pass
        ray_pids = _tree(proc.pid)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    listening = [(name, host, port) for (pid, name), found in sockets.items() for host, port in found]
    assert {"gcs_server", "raylet"} <= names and listening
    assert [s for s in listening if not _loopback(s[1])] == []
    token = ray_token_path()
    assert not token.exists() or token.stat().st_mode & 0o077 == 0
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "hwprune sweep: interrupted (SIGTERM)"
    assert snapshot(tmp_path) == before  # the old sweep whole, nothing of the new one left
    time.sleep(2)
    assert [pid for pid in ray_pids if Path(f"/proc/{pid}").exists()
            and "(Z)" not in Path(f"/proc/{pid}/stat").read_text()[:200]] == []
