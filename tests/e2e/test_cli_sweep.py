"""hwprune sweep end to end on iris (a data set no other test uses): 24 trials on Ray,
the Pareto front checked from sweep.json, best/ verified, a Ray cluster started with
``ray start --head`` giving the same table, and a killed sweep resumed."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.slow

# 2 methods x 3 sparsities x 2 widths x 2 seeds = 24 trials.
GRID = ["--sparsity", "0.5,0.7,0.9", "--method", "magnitude,neurons", "--bits", "4,8", "--seeds", "2",
        "--epochs", "3", "--target", "host", "--objective", "flash", "--min-accuracy", "0.9"]


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    import torch
    from sklearn.datasets import load_iris

    from hwprune.prune.train import fit, make_mlp

    from sklearn.model_selection import train_test_split

    folder = tmp_path_factory.mktemp("iris")
    data = load_iris()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, data.target, test_size=0.2, stratify=data.target,
                                                        random_state=0)
    np.savez(folder / "iris.npz", x=x_train, y=y_train)
    # One test input twice with two labels: no model reaches 100 %, so a bar of 1.0 is out of reach.
    np.savez(folder / "test.npz", x=np.concatenate([x_test, x_test[:1]]),
             y=np.concatenate([y_test, [(y_test[0] + 1) % 3]]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = make_mlp((4, 32, 16, 3), seed=0)
        fit(model, x_train, y_train, 60, lr=3e-3)
    finally:
        torch.set_num_threads(threads)
    torch.save(model, folder / "iris.pt")
    return folder


def _sweep(cli, iris, out, *extra, check_exit=0):
    return cli("sweep", iris / "iris.pt", "--data", iris / "iris.npz", "--test", iris / "test.npz", *GRID, "--out", out,
               *extra,
               check_exit=check_exit)


def _table(summary):
    """What must not depend on where the trials ran: every figure but the times."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in summary["trials"]]


@pytest.fixture(scope="module")
def local_sweep(cli, iris, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "local"
    _sweep(cli, iris, out, "--workers", "2")
    return out


def test_sweep_writes_every_trial_and_a_consistent_front(local_sweep):
    summary = json.loads((local_sweep / "sweep.json").read_text())
    assert len(summary["trials"]) == 24 and summary["run"]["trials_run"] == 24
    assert not summary["failed_trials"]
    assert all(r["bit_exact"] for r in summary["trials"])
    for name in ("sweep.md", "sweep.png"):
        assert (local_sweep / name).stat().st_size > 0
    for r in summary["trials"]:
        assert (local_sweep / "trials" / r["id"] / "export" / "report.json").is_file()

    # The front, recomputed by brute force from the points in sweep.json.
    points = summary["points"]
    assert len(points) == 12
    def dominated(p):
        return any(q["accuracy"] >= p["accuracy"] and q["objective"] <= p["objective"]
                   and (q["accuracy"], q["objective"]) != (p["accuracy"], p["objective"]) for q in points)
    front = {p["config"] for p in points if not dominated(p)}
    assert set(summary["front"]) == front
    assert {p["config"] for p in points if p["on_front"]} == front

    best = summary["best"]
    meeting = [p for p in points if p["accuracy"] >= 0.9]
    assert meeting, "the iris network should reach 90 % at low sparsity"
    assert best["objective"] == min(p["objective"] for p in meeting)
    assert best["config"] in front


def test_best_model_verifies_bit_exact(cli, local_sweep):
    code, out, _ = cli("verify", local_sweep / "best", "--json", check_exit=0)
    assert json.loads(out)["bit_exact"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


def test_ray_cluster_gives_the_same_table(cli, iris, local_sweep, tmp_path):
    ray = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--node-ip-address=127.0.0.2",
                              "--disable-usage-stats"], capture_output=True, text=True, timeout=180, env=env)
    assert started.returncode == 0, started.stderr
    try:
        out = tmp_path / "cluster"
        _sweep(cli, iris, out, "--address", f"127.0.0.2:{port}")
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120, env=env)
    local = json.loads((local_sweep / "sweep.json").read_text())
    cluster = json.loads((out / "sweep.json").read_text())
    assert _table(cluster) == _table(local)
    assert cluster["front"] == local["front"] and cluster["best"] == local["best"]


def test_killed_sweep_resumes_without_repeating_finished_trials(iris, tmp_path):
    out = tmp_path / "killed"
    grid = ["--sparsity", "0.5,0.9", "--method", "magnitude", "--bits", "4,8", "--seeds", "2", "--epochs", "2",
            "--target", "host", "--min-accuracy", "0.5"]  # 8 trials
    command = [sys.executable, "-m", "hwprune", "sweep", str(iris / "iris.pt"), "--data", str(iris / "iris.npz"),
               *grid, "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and len(list(out.glob("trials/*/result.json"))) < 2:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/result.json")}
    assert 2 <= len(before) < 8

    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["run"]["trials_run"] == 8 - len(before)
    assert summary["run"]["trials_resumed"] == len(before)
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/result.json")}
    assert len(after) == 8
    assert all(after[name] == stamp for name, stamp in before.items()), "a finished trial ran again"


@pytest.mark.parametrize("args, message", [
    (["--objective", "lut", "--target", "stm32l4r5"], "lut cannot be measured on stm32l4r5"),
    (["--sparsity", ","], "--sparsity is empty"),
    (["--address", "127.0.0.1:1"], "no Ray cluster answers"),
    (["--bits", "8,1"], "2 to 16"),
    (["--method", "magnitude,filters"], "--method filters found no Conv layers to prune"),
    (["--resume"], "does not exist, so there is no sweep to finish"),
    (["--method", "nm", "--sparsity", "0.6"], "0.6 is no N:M"),
])
def test_bad_input_is_one_line_exit_2(cli, iris, tmp_path, args, message):
    out = tmp_path / "bad"
    base = ["--sparsity", "0.5", "--method", "magnitude", "--bits", "8", "--seeds", "1", "--target", "host",
            "--min-accuracy", "0.5"]
    code, _, err = cli("sweep", iris / "iris.pt", "--data", iris / "iris.npz", *base, *args, "--out", out)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_no_model_meets_the_bar_exits_1_with_the_best_accuracy(cli, iris, local_sweep, tmp_path):
    # A finished sweep resumed with another bar runs no trial: it is only judged again.
    out = tmp_path / "judged"
    shutil.copytree(local_sweep, out)
    code, _, err = _sweep(cli, iris, out, "--resume", "--min-accuracy", "1.01", check_exit=None)
    assert code == 2 and "--min-accuracy must be a fraction in [0, 1], got 1.01" in err
    code, _, err = _sweep(cli, iris, out, "--resume", "--min-accuracy", "1.0", check_exit=None)
    assert code == 1, err
    assert "the best accuracy reached is" in err
    judged = json.loads((out / "sweep.json").read_text())
    assert judged["run"]["trials_run"] == 0 and judged["best"] is None
    assert not (out / "best").exists()
