"""An export folder is data: its code is regenerated and compared before anything of it is
compiled or run, its manifest never leads outside it, and what a user asks for runs or fails.

Payloads write a marker file; a refused folder leaves no marker, and with --trust-export
the folder's code runs as it did before the check existed.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwprune import manifest
from hwprune.cli import build_parser, main
from tests.safety.conftest import snapshot

PAYLOAD_C = """
#include <stdlib.h>
__attribute__((constructor)) static void hwprune_payload(void) {{ system("touch {marker}"); }}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small MLP, its data, a C export and an hls4ml export (--no-compile: no g++ run)."""
    import torch
    from torch import nn

    root = tmp_path_factory.mktemp("exportcode")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval(), root / "m.pt")
    rng = np.random.default_rng(0)
    np.save(root / "x.npy", rng.normal(size=(20, 6)))
    np.savez(root / "train.npz", x=rng.normal(size=(32, 6)).astype(np.float32), y=rng.integers(0, 3, 32))
    np.savez(root / "inf.npz", x=np.full((32, 6), 3e38, np.float32), y=rng.integers(0, 3, 32))
    common = [str(root / "m.pt"), "--calibration", str(root / "x.npy")]
    assert main(["export", *common, "--out", str(root / "c")]) == 0
    assert main(["export", *common, "--out", str(root / "h"), "--backend", "hls4ml", "--no-compile"]) == 0
    assert main(["export", *common, "--out", str(root / "m4"), "--target", "stm32l4r5", "--no-compile"]) == 0
    return root


@pytest.fixture
def case(world, tmp_path, monkeypatch):
    d = tmp_path / "case"
    shutil.copytree(world, d)
    monkeypatch.chdir(d)
    return d


def rehash(folder: Path) -> None:
    """What an attacker does after editing a file: every hash recomputed (the hls4ml
    project's own list of hashes too), so the manifest matches again."""
    summary = folder / "hls4ml" / "hwprune_hls4ml.json"
    if summary.is_file():
        from hwprune.backends.hls4ml.project import _hashes

        data = json.loads(summary.read_text())
        data["files"] = _hashes(folder / "hls4ml")
        summary.write_text(json.dumps(data, indent=2) + "\n")
    manifest.write_pending(folder)
    manifest.finalize(folder)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and ": warning: " not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- the C sources --------------------------------------------------------------------------


@pytest.fixture
def poisoned_c(case):
    marker = case / "MARKER"
    with open(case / "c" / "c" / "model.c", "a") as f:
        f.write(PAYLOAD_C.format(marker=marker))
    rehash(case / "c")
    manifest.check(case / "c")  # the hashes match: only regeneration can tell
    return case / "c", marker


@pytest.mark.parametrize("command", [
    ["verify", "{e}"],
    ["verify", "{e}", "--engine", "host"],
    ["predict", "{e}", "--engine", "host", "--inputs", "x.npy", "--out", "y.npy"],
    ["report", "{e}"],
])
def test_edited_c_with_every_hash_recomputed_is_refused(poisoned_c, run, command):
    export, marker = poisoned_c
    code, _, err = run(*(a.format(e=export) for a in command))
    assert code == 2, err
    assert "c/model.c differs from what hwprune regenerates" in one_line(err)
    assert not marker.exists(), "the payload ran"
    assert not Path("y.npy").exists()


def test_trust_export_compiles_the_folder_as_it_is(poisoned_c, run):
    export, marker = poisoned_c
    code, out, err = run("verify", export, "--trust-export")
    assert code == 0 and "bit-exact" in out, err
    assert "warning: --trust-export" in err
    assert marker.exists(), "with --trust-export the folder's C is compiled and run, as before"
    marker.unlink()
    code, _, err = run("predict", export, "--engine", "host", "--inputs", "x.npy", "--out", "y.npy", "--trust-export")
    assert code == 0 and marker.exists(), err


def test_a_header_added_beside_the_sources_is_refused(case, run):
    """-Ic/ makes a c/stdint.h shadow the system's <stdint.h>: no file more than hwprune writes."""
    export, marker = case / "c", case / "MARKER"
    (export / "c" / "stdint.h").write_text("#include_next <stdint.h>\n#ifndef PAYLOAD\n#define PAYLOAD\n"
                                           + PAYLOAD_C.format(marker=marker) + "#endif\n")
    rehash(export)
    code, _, err = run("verify", export)
    assert code == 2 and "c/stdint.h is not a file hwprune writes there" in one_line(err)
    assert not marker.exists(), "the header's payload ran"


def test_the_regenerated_code_equals_a_fresh_export_byte_for_byte(world):
    """Exports are reproducible: every clean folder passes the check (C, hls4ml, Cortex-M)."""
    from hwprune.harness.regenerate import check_export

    for name in ("c", "h", "m4"):
        check_export(world / name)


REGISTRY_CHECK = """
from pathlib import Path
from hwprune.harness.regenerate import check_export

folder = Path({folder!r})
try:
    check_export(folder)
except RuntimeError as exc:
    assert "no registered backend regenerates c/" in str(exc), exc
else:
    raise SystemExit("a folder was checked with no backend registered to regenerate its C")

import hwprune.backends.builtin
from hwprune.backends.registry import register_backend
from hwprune.errors import FolderError

check_export(folder)


class Extra:
    name, description, options_type, default_bits = "extra", "a folder of code", dict, 8

    def regenerate(self, folder, graph, meta, tmp):
        (tmp / "extra").mkdir()
        (tmp / "extra" / "a.c").write_text("int a;")
        return "extra"


register_backend(Extra())
try:
    check_export(folder)
except FolderError as exc:
    assert "extra/a.c is missing" in str(exc), exc
else:
    raise SystemExit("a registered backend's folder was not compared")
"""


def test_every_registered_backend_regenerates_its_folder_and_the_c_is_never_unchecked(world):
    """check_code loops over the backend registry: a backend registered later is compared
    too, and with no backend registered to regenerate c/ it refuses rather than skip."""
    done = subprocess.run([sys.executable, "-c", REGISTRY_CHECK.format(folder=str(world / "c"))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


# -- the hls4ml project ---------------------------------------------------------------------


def _poison_build_script(export: Path, marker: Path, then: str = "") -> None:
    script = export / "hls4ml" / "build_lib.sh"
    lines = script.read_text().splitlines()
    script.write_text("\n".join([lines[0], f"touch {marker}", *([then] if then else []), *lines[1:]]) + "\n")
    rehash(export)


@pytest.mark.parametrize("command", [
    ["verify", "{e}", "--engine", "hls4ml"],
    ["predict", "{e}", "--engine", "hls4ml", "--inputs", "x.npy", "--out", "y.npy"],
])
def test_edited_hls4ml_build_script_is_refused(case, run, command):
    export, marker = case / "h", case / "MARKER"
    _poison_build_script(export, marker)
    code, _, err = run(*(a.format(e=export) for a in command))
    assert code == 2, err
    assert "hls4ml/build_lib.sh differs from what hwprune regenerates" in one_line(err)
    assert not marker.exists(), "the build script ran"


@pytest.mark.skipif(shutil.which("g++") is None, reason="the hls4ml engine needs g++")
def test_trust_export_runs_the_hls4ml_build_script_as_it_is(case, run, monkeypatch):
    export, marker = case / "h", case / "MARKER"
    monkeypatch.setenv("HWPRUNE_CACHE_DIR", str(case / "cache"))
    _poison_build_script(export, marker, then="exit 3")  # runs, then stops the (slow) g++ build
    code, _, err = run("verify", export, "--engine", "hls4ml", "--trust-export")
    assert code == 2 and "g++ failed on the hls4ml project" in err and "--trust-export" in one_line(err), err
    assert marker.exists(), "with --trust-export the project's own build script runs, as before"


# -- the manifest's paths and sizes ---------------------------------------------------------


OPENED: list = []
_WATCH: list = []


def _audit(event, args):
    if event == "open" and _WATCH and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # cannot be removed; records only while a test watches


@pytest.fixture
def opened():
    OPENED.clear()
    _WATCH.append(True)
    yield OPENED
    _WATCH.clear()


def _list(export: Path, name: str, digest: str) -> None:
    path = export / manifest.MANIFEST_FILE
    data = json.loads(path.read_text())
    data["files"][name] = digest
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_a_manifest_path_outside_the_folder_is_refused_before_reading(case, tmp_path, run, opened, how):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the export\n")
    export = case / "c"
    name = {"relative": os.path.relpath(secret, export), "absolute": str(secret), "symlink": "notes.txt"}[how]
    if how == "symlink":
        (export / "notes.txt").symlink_to(secret)
    _list(export, name, manifest.file_hash(secret))
    before = snapshot(case)
    opened.clear()  # what the test itself read so far
    code, _, err = run("verify", export)
    assert code == 2, err
    line = one_line(err)
    assert ("a path outside the folder" in line) if how != "symlink" else ("outside the folder" in line), line
    assert not [p for p in opened if Path(p).name in ("secret.txt", "notes.txt")], "a file outside the export was opened"
    assert snapshot(case) == before


def test_a_huge_sparse_file_is_refused_from_its_size(case, run, opened):
    export = case / "c"
    big = export / "big.bin"
    with open(big, "wb") as f:
        f.truncate(manifest.MAX_FILE_BYTES + 1)  # sparse: no disk used
    _list(export, "big.bin", "0" * 64)
    opened.clear()
    code, _, err = run("verify", export)
    assert code == 2 and f"big.bin holds {manifest.MAX_FILE_BYTES + 1} bytes" in one_line(err)
    assert str(big) not in opened and not [p for p in opened if p.endswith("big.bin")], "the file was read"


# -- honest figures: what is asked for runs, or the command fails ---------------------------


@pytest.fixture(scope="module")
def path_without_arm_gcc(tmp_path_factory):
    """A PATH with every program of this machine's PATH but arm-none-eabi-*."""
    farm = tmp_path_factory.mktemp("bin")
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if not name.startswith("arm-none-eabi-") and not (farm / name).exists():
                (farm / name).symlink_to(Path(directory) / name)
    return str(farm)


def test_export_cc_gcc_without_arm_gcc_is_exit_2(case, run, monkeypatch, path_without_arm_gcc):
    monkeypatch.setenv("PATH", path_without_arm_gcc)
    code, _, err = run("export", "m.pt", "--calibration", "x.npy", "--out", "o", "--target", "stm32l4r5", "--cc", "gcc")
    assert code == 2 and "--cc gcc" in one_line(err) and "arm-none-eabi-gcc is not on the PATH" in err, err
    assert not (case / "o").exists()


def test_export_for_a_cortex_m_whose_compiler_is_missing_is_exit_2(case, run, monkeypatch, path_without_arm_gcc):
    """The compiler chosen by $HWPRUNE_MCU_CC is asked for as much as one given by --cc."""
    monkeypatch.setenv("PATH", path_without_arm_gcc)
    monkeypatch.setenv("HWPRUNE_MCU_CC", "gcc")
    code, _, err = run("export", "m.pt", "--calibration", "x.npy", "--out", "o", "--target", "stm32l4r5")
    assert code == 2 and "--target stm32l4r5: the firmware cannot be built and emulated" in one_line(err), err
    assert not (case / "o").exists()


def test_verify_cc_gcc_without_arm_gcc_is_exit_2(case, run, monkeypatch, path_without_arm_gcc):
    monkeypatch.setenv("PATH", path_without_arm_gcc)
    code, _, err = run("verify", case / "m4", "--cc", "gcc")
    assert code == 2 and "--cc gcc: the mcu engine cannot run" in one_line(err), err


def test_verify_engine_that_cannot_run_is_exit_2(case, run):
    code, _, err = run("verify", case / "c", "--engine", "host", "--engine", "hls4ml")
    assert code == 2 and "--engine hls4ml cannot run: no hls4ml project" in one_line(err), err


# -- training that diverges, and the range of every numeric flag ----------------------------


def test_training_to_an_infinite_loss_is_exit_2_and_writes_nothing(case, run):
    code, _, err = run("prune", "m.pt", "--data", "inf.npz", "--out", "p.pt", "--sparsity", "0.5", "--epochs", "1")
    assert code == 2 and "training diverged: the loss is inf" in one_line(err), err
    assert not (case / "p.pt").exists()


PRUNE = ["prune", "m.pt", "--data", "train.npz", "--out", "p.pt", "--sparsity", "0.5"]
SWEEP = ["sweep", "m.pt", "--data", "train.npz", "--out", "s", "--min-accuracy", "0.5"]
EXPORT = ["export", "m.pt", "--calibration", "x.npy", "--out", "o"]
BIG = "100000000000000000000"
# (command line, the line it must print): every numeric flag of every command, out of range
RANGES = [
    ([*PRUNE, "--epochs", BIG], "--epochs must be an integer from 0 to 100000"),
    ([*PRUNE, "--lr", "inf"], "--lr must be a number in (0, 10], got inf"),
    ([*PRUNE, "--lr", "nan"], "--lr must be a number in (0, 10], got nan"),
    ([*PRUNE, "--lr", "1e30"], "--lr must be a number in (0, 10], got 1e30"),
    ([*PRUNE, "--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
    ([*PRUNE, "--seed", BIG], "--seed must be an integer from 0 to 4294967295"),
    ([*PRUNE, "--batch-size", "1000000000000"], "--batch-size must be an integer from 1 to 1048576"),
    ([*PRUNE, "--threads", "1000000"], "--threads must be an integer from 1 to 1024"),
    ([*PRUNE, "--schedule", "iterative", "--rounds", "1000000000"], "--rounds must be an integer from 1 to 1000"),
    ([*PRUNE, "--warmup-steps", BIG], "--warmup-steps must be an integer from 0 to 1000000000"),
    ([*PRUNE, "--schedule", "lottery", "--rewind-iteration", BIG], "--rewind-iteration must be an integer from 0"),
    ([*PRUNE, "--min-density", "inf"], "--min-density must be a fraction in [0, 1], got inf"),
    (["prune", "m.pt", "--data", "train.npz", "--out", "p.pt", "--sparsity", "inf"], "--sparsity must be in [0, 1)"),
    ([*EXPORT, "--sparsity", "nan"], "--sparsity must be in [0, 1), got nan"),
    ([*EXPORT, "--weight-bits", BIG], "--weight-bits must be an integer from 2 to 16"),
    ([*EXPORT, "--activation-bits", "1"], "--activation-bits must be an integer from 2 to 16, got 1"),
    ([*EXPORT, "--backend", "hls4ml", "--reuse-factor", "100000000000"], "--reuse-factor must be an integer from 1 to 65536"),
    (["resources", "c", "--reuse-factor", BIG], "--reuse-factor must be an integer from 1 to 65536"),
    (["demo", "--out", "d", "--seed", BIG], "--seed must be an integer from 0 to 4294967294"),
    ([*SWEEP, "--seeds", "1000000000"], "--seeds must be an integer from 1 to 1000"),
    ([*SWEEP, "--epochs", BIG], "--epochs must be an integer from 1 to 100000"),
    ([*SWEEP, "--workers", "1000000000"], "--workers must be an integer from 1 to 1024"),
    ([*SWEEP, "--activation-bits", "100"], "--activation-bits must be an integer from 2 to 16"),
    (["sweep", "m.pt", "--data", "train.npz", "--out", "s", "--min-accuracy", "nan"],
     "--min-accuracy must be a fraction in [0, 1], got nan"),
]


@pytest.mark.parametrize("argv, message", RANGES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in RANGES])
def test_numeric_flags_have_ranges(argv, message, capsys):
    """Refused while the command line is read: before any model is loaded or any work starts."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in one_line(err), err
    assert err.startswith(f"hwprune {argv[0]}: error: ")
