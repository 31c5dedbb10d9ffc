"""--force never opens a window where the user's previous folder is gone: a run killed at
any moment leaves the old folder byte for byte, or the new one complete. And --force,
--plot and --out never remove or overwrite what hwprune did not write."""

import os
import random
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
from hwprune.outputs import recover_aside
from tests.safety.conftest import snapshot

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# One replacement through output_dir, as export does it: many files, so that it takes a
# while; argv[2] == "fallback" takes the path without renameat2 (other systems).
REPLACE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hwprune import outputs
    if sys.argv[2] == "fallback":
        outputs.exchange = lambda first, second: False
    with outputs.output_dir(Path(sys.argv[1]), force=True) as tmp:
        for i in range(400):
            (tmp / f"f{i:03d}.txt").write_text("new " * 200 + str(i))
""")


def _old_folder(path: Path) -> dict:
    path.mkdir()
    for i in range(50):
        (path / f"f{i:03d}.txt").write_text(f"old {i}")
    (path / "sub").mkdir()
    (path / "sub" / "g.bin").write_bytes(bytes(range(256)))
    manifest.write_pending(path)
    manifest.finalize(path)
    return snapshot(path)


def _state(path: Path, old: dict) -> str:
    """'old' (byte-identical), 'new' (complete: its manifest checks) or what is wrong."""
    recover_aside(path)  # what the next run does first
    if path.is_dir() and snapshot(path) == old:
        return "old"
    try:
        manifest.check(path)
    except Exception as exc:
        return f"neither: {exc}"
    return "new"


def test_output_dir_killed_at_random_moments_keeps_the_old_folder_or_the_new(tmp_path):
    """35 kills of a replacement, both with the atomic exchange and with the fallback."""
    _old_folder(tmp_path / "timed")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", REPLACE, str(tmp_path / "timed"), "exchange"], env=ENV, check=True)
    seconds = time.perf_counter() - started  # kills spread over the whole run, and a little after
    rng = random.Random(24)
    seen = {"old": 0, "new": 0}
    for n in range(35):
        out = tmp_path / f"o{n}"
        old = _old_folder(out)
        mode = "fallback" if n % 2 else "exchange"
        proc = subprocess.Popen([sys.executable, "-c", REPLACE, str(out), mode], env=ENV)
        time.sleep(rng.uniform(0.0, 1.2 * seconds))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        state = _state(out, old)
        assert state in ("old", "new"), (n, mode, state)
        seen[state] += 1
    assert seen["old"] and seen["new"], seen  # the kills landed before and after the swap


# The same replacement killed at its k-th rename (os.rename or os.replace): the moments
# between the renames that a timed kill rarely hits.
AT_RENAME = textwrap.dedent("""
    import os, signal, sys
    calls = [0]
    def counted(real):
        def rename(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return rename
    os.rename, os.replace = counted(os.rename), counted(os.replace)
""") + REPLACE


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_output_dir_killed_at_each_rename(mode, tmp_path):
    for k in range(1, 5):
        out = tmp_path / f"o{k}"
        old = _old_folder(out)
        proc = subprocess.run([sys.executable, "-c", AT_RENAME, str(out), mode, str(k)], env=ENV)
        state = _state(out, old)
        assert state in ("old", "new"), (k, proc.returncode, state)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataloss")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).eval(), root / "m.pt")
    np.save(root / "x.npy", np.random.default_rng(0).normal(size=(40, 6)))
    return root


def _export_args(model, out, *extra):
    return ["export", str(model / "m.pt"), "--calibration", str(model / "x.npy"), "--out", str(out),
            "--no-compile", *extra]


def test_export_force_killed_at_random_moments(model, tmp_path, capsys):
    """15 kills of `export --force` over a previous export: afterwards the previous export
    is byte-identical, or the new one is in place and verify accepts it."""
    old_dir = tmp_path / "old"
    assert main(_export_args(model, old_dir, "--sparsity", "0.5")) == 0
    old = snapshot(old_dir)
    rng = random.Random(7)
    states = []
    for n in range(15):
        out = tmp_path / f"e{n}"
        subprocess.run(["cp", "-a", str(old_dir), str(out)], check=True)
        proc = subprocess.Popen([sys.executable, "-m", "hwprune", *_export_args(model, out, "--force")], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.4))  # the export takes about 1.9 s on a quiet machine
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
        state = _state(out, old)
        if state == "new":
            assert main(["verify", str(out)]) == 0, n
        states.append(state)
        assert state in ("old", "new"), (n, state)
    capsys.readouterr()


def test_a_symlink_or_a_users_empty_folder_is_never_replaced(model, tmp_path, run):
    target = tmp_path / "real"
    assert run(*_export_args(model, target))[0] == 0
    link = tmp_path / "link"
    link.symlink_to(target)
    before = snapshot(tmp_path)
    code, _, err = run(*_export_args(model, link, "--force"))
    assert code == 2 and "symbolic link" in err and snapshot(tmp_path) == before
    (tmp_path / "mine").mkdir()
    code, _, err = run(*_export_args(model, tmp_path / "mine", "--force"))
    assert code == 2 and "hwprune did not write it" in err and (tmp_path / "mine").is_dir()
    file_link = tmp_path / "y.npy"
    file_link.symlink_to(tmp_path / "x_elsewhere.npy")
    code, _, err = run("predict", target, "--inputs", model / "x.npy", "--out", file_link, "--force")
    assert code == 2 and "symbolic link" in err and file_link.is_symlink()


def test_predict_never_writes_into_its_input_export(model, tmp_path, run):
    out = tmp_path / "e"
    assert run(*_export_args(model, out))[0] == 0
    before = snapshot(out)
    code, _, err = run("predict", out, "--inputs", model / "x.npy", "--out", out / "y.npy")
    assert code == 2 and "inside the input" in err and err.count("\n") == 1
    assert snapshot(out) == before


def test_resources_plot_follows_force_and_never_lands_in_an_export(model, tmp_path, run):
    out = tmp_path / "e"
    assert run(*_export_args(model, out))[0] == 0
    users = tmp_path / "paper.pdf"
    users.write_bytes(b"%PDF the user's paper")
    before = snapshot(tmp_path)
    code, _, err = run("resources", out, "--sweep-sparsity", "--plot", users)
    assert code == 2 and "exists already; pass --force" in err and snapshot(tmp_path) == before
    code, _, err = run("resources", out, "--sweep-sparsity", "--plot", out / "report.png", "--force")
    assert code == 2 and "inside the export folder" in err and snapshot(tmp_path) == before
    code, _, _ = run("resources", out, "--sweep-sparsity", "--plot", users, "--force")
    assert code == 0 and users.read_bytes()[:4] == b"%PDF" and b"the user's paper" not in users.read_bytes()
    assert main(["verify", str(out)]) == 0


def test_sweep_force_refuses_a_users_file_inside_trials(model, tmp_path, run):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 6)).astype(np.float32), y=np.arange(60) % 3)
    sweep = tmp_path / "s"
    (sweep / "trials" / "t").mkdir(parents=True)
    (sweep / "sweep-spec.json").write_text("{}")
    (sweep / "trials" / "t" / "notes.txt").write_text("the user's notes")
    before = snapshot(tmp_path)
    code, _, err = run("sweep", model / "m.pt", "--data", tmp_path / "d.npz", "--sparsity", "0.5", "--seeds", "1",
                       "--target", "host", "--min-accuracy", "0", "--out", sweep, "--force")
    assert code == 2 and "trials/t/notes.txt, which hwprune did not write" in err
    assert snapshot(tmp_path) == before
