"""The bad-input catalogue: every case is one line on stderr, exit 2, and the disk unchanged.

The CLI runs in-process (``hwprune.cli.main``) so that the whole catalogue stays fast; the
contract is the same as from a shell. ``CATALOGUE`` is the table the README and the
issue's closing note list.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.safety.conftest import snapshot

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs and one good export, made once and copied into each case's folder."""
    root = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3)).eval()
    torch.save(model, root / "m.pt")
    x = np.random.default_rng(0).normal(size=(30, 6))
    np.save(root / "x.npy", x)
    np.save(root / "huge.npy", x * 1e30)
    (root / "afile").write_text("a file, not a folder")
    from hwprune.cli import main

    assert main(["export", str(root / "m.pt"), "--out", str(root / "e"), "--calibration", str(root / "x.npy")]) == 0
    from onnx import TensorProto, helper, numpy_helper

    def onnx_model(op):
        graph = helper.make_graph(
            [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc", transB=1),
             helper.make_node(op, ["g"], ["y"], name="act")], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
            [numpy_helper.from_array(np.ones((3, 6), np.float32), "w"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    onnx.save(onnx_model("Softplus"), root / "softplus.onnx")
    onnx.save(onnx_model("Relu"), root / "good.onnx")
    data = (root / "good.onnx").read_bytes()
    (root / "cut.onnx").write_bytes(data[: len(data) // 2])
    torch.export.save(torch.export.export(nn.Sequential(nn.Linear(6, 3), nn.GELU()).eval(), (torch.randn(1, 6),)),
                      root / "tanh.pt2")
    (root / "unknown_key.toml").write_text('name = "t"\nkind = "mcu"\ndescription = "d"\ncpu = "cortex-m4"\n'
                                           'flash_kib = 1\nram_kib = 1\nclock = 80\nenergy_nj_per_cycle = 0.1\n')
    (root / "no_unit.toml").write_text('name = "t"\nkind = "mcu"\ndescription = "d"\ncpu = "cortex-m4"\n'
                                       'flash_kib = "1 MiB"\nram_kib = 1\nclock_mhz = 80\nenergy_nj_per_cycle = 0.1\n')
    return root


def _edit(name, action):
    def setup(d: Path):
        action(d / "e" / name)
    return setup


def _zero_first_layer(path: Path):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = sorted(arrays)[0]
    arrays[key] = np.zeros_like(arrays[key])
    np.savez(path, **arrays)


def _write(text: bytes):
    return lambda path: path.write_bytes(text)


def _incomplete_vectors(path: Path):
    with np.load(path) as npz:
        np.savez(path, x=npz["x"])


def _drop_manifest(d: Path):
    (d / "e" / "hwprune-manifest.json").unlink()


def _foreign_file(d: Path):
    (d / "e" / "notes.txt").write_text("mine")


def _precious(d: Path):
    (d / "precious").mkdir()
    (d / "precious" / "thesis.tex").write_text("years of work")


EXPORT = ["export", "{d}/m.pt", "--calibration", "{d}/x.npy"]
# (case, setup(d) or None, arguments ({d} is the case folder), environment, message on stderr)
CATALOGUE = [
    ("--out . --force", None, [*EXPORT, "--out", ".", "--force"], {},
     "--force will not replace .: it is or holds the current folder"),
    ("--force on a folder with a foreign file", _foreign_file, [*EXPORT, "--out", "{d}/e", "--force"], {},
     "it holds notes.txt, which hwprune did not write"),
    ("--force on a folder hwprune did not write", _precious, [*EXPORT, "--out", "{d}/precious", "--force"], {},
     "it holds no hwprune-manifest.json, so hwprune did not write it"),
    ("--force on the folder holding the input", None,
     ["export", "{d}/e", "--out", "{d}/e", "--force"], {}, "it is or holds the input"),
    ("--out under an existing file", None, [*EXPORT, "--out", "{d}/afile/sub"], {},
     "afile is a file, not a folder"),
    ("predict --out under an existing file", None,
     ["predict", "{d}/e", "--inputs", "{d}/x.npy", "--out", "{d}/afile/y.npy"], {}, "afile is a file, not a folder"),
    ("empty weights.npz (verify)", _edit("weights.npz", _write(b"")), ["verify", "{d}/e"], {},
     "weights.npz does not match hwprune-manifest.json"),
    ("a zeroed layer in weights.npz (verify)", _edit("weights.npz", _zero_first_layer), ["verify", "{d}/e"], {},
     "weights.npz does not match"),
    ("missing vectors.npz (verify)", _edit("vectors.npz", Path.unlink), ["verify", "{d}/e"], {},
     "vectors.npz is listed in hwprune-manifest.json but missing"),
    ("garbage vectors.npz (verify)", _edit("vectors.npz", _write(b"garbage")), ["verify", "{d}/e"], {},
     "vectors.npz does not match"),
    ("incomplete vectors.npz (re-export)", _edit("vectors.npz", _incomplete_vectors),
     ["export", "{d}/e", "--out", "{d}/again"], {}, "vectors.npz does not match"),
    ("no manifest (verify)", _drop_manifest, ["verify", "{d}/e"], {}, "no hwprune-manifest.json"),
    ("no manifest (predict)", _drop_manifest, ["predict", "{d}/e", "--inputs", "{d}/x.npy", "--out", "{d}/y.npy"],
     {}, "no hwprune-manifest.json"),
    ("no manifest (report)", _drop_manifest, ["report", "{d}/e"], {}, "no hwprune-manifest.json"),
    ("CC not on the PATH", None, [*EXPORT, "--out", "{d}/p1/p2/x"], {"CC": "nosuchcc"},
     "no C compiler found: $CC is 'nosuchcc'"),
    ("no compiler at all", None, [*EXPORT, "--out", "{d}/p1/p2/x"], {"CC": "", "PATH": "/nonexistent"},
     "no C compiler found"),
    ("a failing compiler (CC=false)", None, [*EXPORT, "--out", "{d}/p1/p2/x"], {"CC": "false"},
     "the C compiler failed"),
    ("calibration of 1e30", None, ["export", "{d}/m.pt", "--calibration", "{d}/huge.npy", "--out", "{d}/o"], {},
     "huge.npy): value 2.4e+30 (vector 26, element 3) needs 102 integer bits"),
    ("truncated ONNX", None, ["export", "{d}/cut.onnx", "--calibration", "{d}/x.npy", "--out", "{d}/o"], {},
     "not a valid ONNX model"),
    ("ONNX with an unsupported op", None,
     ["export", "{d}/softplus.onnx", "--calibration", "{d}/x.npy", "--out", "{d}/o"], {},
     "node 'act' (Softplus): op type 'Softplus' is not supported; supported op types are"),
    (".pt2 with an unsupported module", None,
     ["export", "{d}/tanh.pt2", "--calibration", "{d}/x.npy", "--out", "{d}/o"], {},
     "(aten.gelu.default) is not supported"),
    ("target TOML with an unknown key", None, [*EXPORT, "--out", "{d}/o", "--target", "{d}/unknown_key.toml"], {},
     "unknown key 'clock'; units are part of the key names: did you mean 'clock_mhz'?"),
    ("target TOML with a value without its unit", None,
     [*EXPORT, "--out", "{d}/o", "--target", "{d}/no_unit.toml"], {},
     "flash_kib = '1 MiB' must be a positive integer in the key's unit (KiB)"),
]


@pytest.mark.parametrize("case, setup, args, env, message", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue(case, setup, args, env, message, world, tmp_path, run, monkeypatch):
    d = tmp_path / "case"
    shutil.copytree(world, d)
    if setup:
        setup(d)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(d)
    before = snapshot(d)
    code, out, err = run(*(a.format(d=d) for a in args))
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert message in err, err
    assert err.startswith("hwprune ") and "Traceback" not in err
    assert snapshot(d) == before, "the disk changed"


def test_unwritable_output_folder(world, tmp_path, run):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run("export", world / "m.pt", "--calibration", world / "x.npy", "--out", locked / "o")
        assert code == 2 and "no write permission" in err and len(err.strip().splitlines()) == 1
    finally:
        locked.chmod(0o755)
