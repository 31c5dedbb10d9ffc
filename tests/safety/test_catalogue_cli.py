"""More of the bad-input catalogue, found by running every command and flag as a new user:
unreadable data files, flags that mean nothing together, folders of the wrong kind. Each
case is one line on stderr, exit 2, and the disk unchanged (as in test_catalogue.py).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from tests.safety.conftest import snapshot

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs, broken copies of them and one good export, made once and copied into each case."""
    root = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3)).eval(), root / "m.pt")
    nan = nn.Sequential(nn.Linear(6, 3)).eval()
    with torch.no_grad():
        nan[0].weight[1, 2] = float("nan")
    torch.save(nan, root / "nan.pt")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6))
    np.save(root / "x.npy", x)
    np.save(root / "x5.npy", x[:, :5])
    (root / "empty.npy").write_bytes(b"")
    (root / "afolder").mkdir()
    y = rng.integers(0, 3, 30)
    np.savez(root / "train.npz", x=x.astype(np.float32), y=y)
    np.savez(root / "train5.npz", x=x[:, :5].astype(np.float32), y=y)
    np.savez(root / "objects.npz", x=np.array([x[0], x[1][:3]], dtype=object), y=y[:2])
    (root / "cut.npz").write_bytes((root / "train.npz").read_bytes()[:300])
    (root / "sweep").mkdir()
    (root / "sweep" / "sweep.json").write_text("{}")
    shutil.copy(DATA / "KERAS_3layer.json", root / "k.json")
    np.save(root / "k.npy", rng.normal(size=(20, 16)))
    for name, edit in {"k_missing.h5": lambda g: g.__delitem__("kernel:0"),
                       "k_text.h5": lambda g: (g.__delitem__("kernel:0"), g.create_dataset("kernel:0", data=[b"ab"])),
                       "k_nan.h5": lambda g: g["kernel:0"].__setitem__((3, 4), np.nan)}.items():
        shutil.copy(DATA / "KERAS_3layer_weights.h5", root / name)
        (root / name).chmod(0o644)
        with h5py.File(root / name, "r+") as f:
            edit(f["fc2_relu/fc2_relu"])
    _onnx_gemm(root / "nan.onnx", np.where(np.eye(3, 6) > 0, np.nan, 1.0))
    _onnx_gemm(root / "shape.onnx", np.ones((3, 5)))  # declares 6 inputs, computes on 5
    from hwprune.cli import main

    assert main(["export", str(root / "m.pt"), "--out", str(root / "e"), "--calibration", str(root / "x.npy")]) == 0
    return root


def _onnx_gemm(path: Path, weight: np.ndarray) -> None:
    """One Gemm node whose graph input is declared (1, 6)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight.astype(np.float32), "w"), numpy_helper.from_array(np.zeros(3, np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


EXPORT = ["export", "{d}/m.pt", "--calibration", "{d}/x.npy", "--out", "{d}/o"]
PRUNE = ["prune", "{d}/m.pt", "--out", "{d}/p.pt", "--sparsity", "0.5", "--epochs", "0"]
KERAS = ["export", "{d}/k.json", "--calibration", "{d}/k.npy", "--out", "{d}/o"]
# (case, arguments ({d} is the case folder), message on stderr)
CATALOGUE = [
    ("empty calibration file", ["export", "{d}/m.pt", "--calibration", "{d}/empty.npy", "--out", "{d}/o"],
     "empty.npy: not a readable .npy array (the file is empty or cut short)"),
    ("calibration is a folder", ["export", "{d}/m.pt", "--calibration", "{d}/afolder", "--out", "{d}/o"],
     "afolder: is a folder; give a .npy file"),
    ("prune --data: object arrays", [*PRUNE, "--data", "{d}/objects.npz"], "objects.npz: arrays x and y cannot be read"),
    ("prune --data: truncated .npz", [*PRUNE, "--data", "{d}/cut.npz"], "cut.npz: not a readable .npz file"),
    ("prune --data: a .npy", [*PRUNE, "--data", "{d}/x.npy"], "x.npy: a single array, not an .npz archive"),
    ("prune --data: an empty file", [*PRUNE, "--data", "{d}/empty.npy"], "the file is empty or cut short"),
    ("prune --data: a folder", [*PRUNE, "--data", "{d}/afolder"], "afolder: is a folder; give an .npz file"),
    ("prune --data that does not fit the model", [*PRUNE, "--data", "{d}/train5.npz"],
     "train5.npz with {d}/m.pt: the model cannot run on inputs of shape (5,)"),
    ("prune --out that is not .pt", ["prune", "{d}/m.pt", "--data", "{d}/train.npz", "--out", "{d}/p.onnx",
                                     "--sparsity", "0.5"], "name it .pt or .pth"),
    ("Keras weight listed but missing", [*KERAS, "--weights", "{d}/k_missing.h5"],
     "k_missing.h5: layer 'fc2_relu': weight 'fc2_relu/kernel:0' is listed in weight_names but missing"),
    ("Keras weight that is text", [*KERAS, "--weights", "{d}/k_text.h5"],
     "k_text.h5: layer 'fc2_relu': weight 'fc2_relu/kernel:0' is not numeric"),
    ("Keras --weights is a folder", [*KERAS, "--weights", "{d}/afolder"], "afolder: is a folder; --weights takes"),
    ("ONNX initializer with NaN", ["export", "{d}/nan.onnx", "--calibration", "{d}/x.npy", "--out", "{d}/o"],
     "nan.onnx: node 'fc' (Gemm): initializer 'w' has a non-finite value nan at index (0, 0)"),
    ("ONNX input declared wider than its first layer", ["export", "{d}/shape.onnx", "--calibration", "{d}/x.npy",
                                                        "--out", "{d}/o"],
     "shape.onnx: the graph input is declared (N, 6), but its first layer takes (N, 5)"),
    ("torch weight NaN names the file", ["export", "{d}/nan.pt", "--calibration", "{d}/x.npy", "--out", "{d}/o"],
     "nan.pt: module '0' (Linear): weight has a non-finite value nan at index (1, 2)"),
    ("Keras weight NaN names both files", [*KERAS, "--weights", "{d}/k_nan.h5"],
     "k.json with {d}/k_nan.h5: layer 'fc2_relu': weight has a non-finite value nan"),
    ("--target a binary file", [*EXPORT, "--target", "{d}/x.npy"], "x.npy: not a target .toml file"),
    ("--target a folder", [*EXPORT, "--target", "{d}/afolder/"], "is a folder; give a target name or a target .toml"),
    ("--activation-bits 0", [*EXPORT, "--activation-bits", "0"], "activation-bits must be an integer from 2 to 16, got 0"),
    ("--cc without a target", [*EXPORT, "--cc", "gcc"], "--cc gcc chooses the Cortex-M cross compiler; it needs a "
                                                        "Cortex-M --target (hwprune targets), got none"),
    ("--cc with an FPGA target", [*EXPORT, "--cc", "clang", "--target", "xc7z020"], "got xc7z020"),
    ("a flag of the wrong type", [*EXPORT, "--weight-bits", "4.5"],
     "hwprune export: error: --weight-bits must be an integer from 2 to 16, got '4.5' (see hwprune export --help)"),
    ("--weight-storage without the resource strategy", [*EXPORT, "--backend", "hls4ml", "--no-compile",
                                                        "--weight-storage", "compressed"],
     "--weight-storage compressed: weights are stored in memory with the resource strategy only"),
    ("verify --cc without the mcu engine", ["verify", "{d}/e", "--cc", "gcc"],
     "--cc gcc is the mcu engine's cross compiler, and the mcu engine does not run here"),
    ("verify --inputs of the wrong shape", ["verify", "{d}/e", "--inputs", "{d}/x5.npy"],
     "inputs ({d}/x5.npy) have shape (30, 5)"),
    ("predict --force onto the inputs", ["predict", "{d}/e", "--inputs", "{d}/x.npy", "--out", "{d}/x.npy",
                                         "--force"], "it is or holds the input"),
    ("predict --out that is no .npy", ["predict", "{d}/e", "--inputs", "{d}/x.npy", "--out", "{d}/y.txt"],
     "--out {d}/y.txt: predict writes a NumPy array; give a file name ending in .npy"),
    ("predict --target without the mcu engine", ["predict", "{d}/e", "--inputs", "{d}/x.npy", "--out", "{d}/y.npy",
                                                 "--target", "stm32l4r5"], "--engine reference does not use it"),
    ("resources --plot of an unknown format", ["resources", "{d}/e", "--sweep-sparsity", "--plot", "{d}/x.npy"],
     "--plot {d}/x.npy: name a .png, .svg or .pdf file"),
    ("resources --plot under a file", ["resources", "{d}/e", "--sweep-sparsity", "--plot", "{d}/x.npy/p.png"],
     "x.npy is a file, not a folder"),
    ("report on the export's c/ folder", ["report", "{d}/e/c"], "a folder inside the export"),
    ("report on a sweep folder", ["report", "{d}/sweep"], "a sweep folder, not an export; its best model's export"),
    ("verify on a file", ["verify", "{d}/m.pt"], "m.pt: a file, not an export folder"),
    ("sweep grid with an empty item", ["sweep", "{d}/m.pt", "--data", "{d}/train.npz", "--target", "stm32l4r5",
                                       "--min-accuracy", "0.5", "--out", "{d}/s", "--sparsity", "0.5,,0.9"],
     "--sparsity '0.5,,0.9' has an empty item"),
    ("demo --format nm (before the training)", ["demo", "--format", "nm", "--out", "{d}/o"],
     "--format nm stores N:M masks, and the demo prunes by unstructured magnitude"),
    ("demo --seed below 0", ["demo", "--seed", "-5", "--out", "{d}/o"], "--seed must be an integer from 0 to"),
]


@pytest.mark.parametrize("case, args, message", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue(case, args, message, world, tmp_path, run, monkeypatch):
    d = tmp_path / "case"
    shutil.copytree(world, d)
    monkeypatch.chdir(d)
    before = snapshot(d)
    code, out, err = run(*(a.format(d=d) for a in args))
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert message.format(d=d) in err, err
    assert err.startswith("hwprune ") and "Traceback" not in err
    assert snapshot(d) == before, "the disk changed"


def test_closed_stdout_pipe_is_not_an_error():
    """``hwprune targets --json | head -c0``: the reader went away; exit 0 and nothing on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "hwprune", "targets", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == "", err


def test_verify_measures_with_the_exports_compiler(world, tmp_path, run):
    """An export cross-built with --cc gcc records it; verify and report build with it too, so
    their flash and cycle figures are the export's (not clang's)."""
    from hwprune.harness.select import select_engines
    from hwprune.targets import get_target

    code, _, err = run("export", world / "m.pt", "--calibration", world / "x.npy", "--out", tmp_path / "g",
                       "--target", "stm32l4r5", "--cc", "gcc", "--no-compile")
    assert code == 0, err
    meta = json.loads((tmp_path / "g" / "export.json").read_text())
    assert meta["cc"] == "gcc"
    _, mcu = select_engines(get_target("stm32l4r5"), True, None, None, default_cc=meta["cc"])
    assert mcu.cc == "gcc"
    _, mcu = select_engines(get_target("stm32l4r5"), True, None, "clang", default_cc=meta["cc"])
    assert mcu.cc == "clang"  # the command line wins


def test_temporary_folders_carry_the_pid():
    """The Cortex-M build cache is named hwprune-mcu-<pid>-...: a run killed before its atexit
    (a Ray worker, SIGKILL) leaves a folder the next run recognises and removes."""
    import os

    from hwprune.harness import cross
    from hwprune.tempdirs import _NAME

    match = _NAME.fullmatch(cross._cache_dir().name)
    assert match and int(match["pid"]) == os.getpid()
