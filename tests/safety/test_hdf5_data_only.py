"""Keras HDF5 weights (``.h5`` and the ``model.weights.h5`` of a ``.keras``) are read as data only.

HDF5 can point a dataset at other files: external storage (raw bytes of any local file),
external links, virtual datasets. A weights file using them would copy a local secret into
the export. Each case is one line, exit 2, nothing written, and the secret never opened:
the secret is a named pipe watched by a thread that notices (and unblocks) any reader.
"""

import errno
import io
import json
import os
import shutil
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from hwprune.errors import ModelError, WeightError
from hwprune.frontends.keras import from_keras_file
from hwprune.frontends.safe_h5 import open_h5

DATA = Path(__file__).resolve().parents[1] / "data"
KERNEL = "fc2_relu/fc2_relu/kernel:0"  # (64, 32) float32: 8192 bytes
KERNEL_BYTES = 64 * 32 * 4


@contextmanager
def watched_fifo(path: Path):
    """A named pipe at ``path``; yields an Event set if anything opens it for reading."""
    os.mkfifo(path)
    opened, stop = threading.Event(), threading.Event()

    def watch():
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(0.005)
                continue
            opened.set()
            try:
                os.write(fd, b"\x01" * KERNEL_BYTES)  # let the reader finish instead of hanging
            except OSError:
                pass
            os.close(fd)
            return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join(5)


def _keras2_h5(dst: Path, edit) -> Path:
    shutil.copy(DATA / "KERAS_3layer_weights.h5", dst)
    dst.chmod(0o644)
    with h5py.File(dst, "r+") as f:
        group = f[KERNEL.rsplit("/", 1)[0]]
        del group["kernel:0"]
        edit(f, group)
    return dst


def _export_keras2(run, tmp_path, weights):
    np.save(tmp_path / "k.npy", np.random.default_rng(0).normal(size=(20, 16)))
    return run("export", DATA / "KERAS_3layer.json", "--weights", weights, "--calibration", tmp_path / "k.npy",
               "--out", tmp_path / "o", "--no-compile")


def _one_line_exit_2(code, err, message, tmp_path):
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_external_storage_h5_never_opens_the_secret(tmp_path, run):
    secret = tmp_path / "secret"
    with watched_fifo(secret) as opened:
        weights = _keras2_h5(tmp_path / "w.h5", lambda f, g: g.create_dataset(
            "kernel:0", shape=(64, 32), dtype="f4", external=[(str(secret), 0, KERNEL_BYTES)]))
        code, _, err = _export_keras2(run, tmp_path, weights)
    assert not opened.is_set(), "the secret was opened"
    _one_line_exit_2(code, err, "keeps its data in external storage", tmp_path)


def test_external_link_h5_is_refused(tmp_path, run):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = np.ones((64, 32), np.float32)

    def link(f, group):
        group["kernel:0"] = h5py.ExternalLink(str(other), "/k")

    code, _, err = _export_keras2(run, tmp_path, _keras2_h5(tmp_path / "w.h5", link))
    _one_line_exit_2(code, err, "is an external link to", tmp_path)


def test_virtual_dataset_h5_is_refused(tmp_path, run):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = np.ones((64, 32), np.float32)

    def virtual(f, group):
        layout = h5py.VirtualLayout(shape=(64, 32), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "k", shape=(64, 32))
        group.create_virtual_dataset("kernel:0", layout)

    code, _, err = _export_keras2(run, tmp_path, _keras2_h5(tmp_path / "w.h5", virtual))
    _one_line_exit_2(code, err, "is a virtual dataset", tmp_path)


def test_dangling_soft_link_h5_is_refused(tmp_path, run):
    def soft(f, group):
        group["kernel:0"] = h5py.SoftLink("/nowhere/kernel")

    code, _, err = _export_keras2(run, tmp_path, _keras2_h5(tmp_path / "w.h5", soft))
    _one_line_exit_2(code, err, "is a soft link to '/nowhere/kernel', which is not an object of this file", tmp_path)


def test_soft_link_inside_the_file_still_loads(tmp_path, run):
    def soft(f, group):
        f["stash"] = np.asarray(h5py.File(DATA / "KERAS_3layer_weights.h5", "r")[KERNEL])
        group["kernel:0"] = h5py.SoftLink("/stash")

    code, _, err = _export_keras2(run, tmp_path, _keras2_h5(tmp_path / "w.h5", soft))
    assert code == 0, err


def test_huge_declared_dataset_is_refused_before_allocating(tmp_path, run):
    """A small file declaring 74.5 GiB (chunks never written): refused, nothing allocated."""
    weights = _keras2_h5(tmp_path / "w.h5", lambda f, g: g.create_dataset(
        "kernel:0", shape=(100_000, 200_000), dtype="f4", chunks=(64, 32)))
    assert weights.stat().st_size < 64_000  # the 36 KB test file itself, plus a chunk index
    code, _, err = _export_keras2(run, tmp_path, weights)
    _one_line_exit_2(code, err, "declares 74.5 GiB, more than the memory budget of 1.0 GiB", tmp_path)


def test_unwritten_dataset_is_refused(tmp_path, run):
    """A dataset of the right shape whose bytes the file does not hold reads as fill values."""
    weights = _keras2_h5(tmp_path / "w.h5", lambda f, g: g.create_dataset(
        "kernel:0", shape=(64, 32), dtype="f4", chunks=(8, 8), fillvalue=7.0))
    code, _, err = _export_keras2(run, tmp_path, weights)
    _one_line_exit_2(code, err, "declares shape (64, 32) (8192 bytes) but the file stores only 0 bytes", tmp_path)


def test_budget_comes_from_the_environment(tmp_path, run, monkeypatch):
    monkeypatch.setenv("HWPRUNE_MEMORY_BUDGET_MB", "0.001")
    code, _, err = _export_keras2(run, tmp_path, DATA / "KERAS_3layer_weights.h5")
    _one_line_exit_2(code, err, "more than the memory budget of 1.0 KiB", tmp_path)
    monkeypatch.setenv("HWPRUNE_MEMORY_BUDGET_MB", "lots")
    code, _, err = _export_keras2(run, tmp_path, DATA / "KERAS_3layer_weights.h5")
    _one_line_exit_2(code, err, "$HWPRUNE_MEMORY_BUDGET_MB is 'lots'", tmp_path)


# -- .keras ---------------------------------------------------------------------------------

CONFIG = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    {"class_name": "InputLayer", "config": {"name": "input", "batch_shape": [None, 6]}},
    {"class_name": "Dense", "config": {"name": "dense", "units": 3, "activation": "linear", "use_bias": True}}]}}


def _keras3(path: Path, kernel) -> Path:
    """A ``.keras`` archive as Keras 3 writes it; ``kernel(vars_group)`` makes variable 0."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        variables = f.create_group("layers/dense/vars")
        kernel(variables)
        variables["1"] = np.zeros(3, np.float32)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(CONFIG))
        archive.writestr("model.weights.h5", buffer.getvalue())
    return path


def test_plain_keras3_file_loads(tmp_path):
    graph = from_keras_file(_keras3(tmp_path / "m.keras", lambda v: v.create_dataset("0", data=np.ones((6, 3)))))
    assert graph.layers[0].weight.shape == (3, 6)


def test_external_storage_keras3_never_opens_the_secret(tmp_path, run):
    secret = tmp_path / "secret"
    with watched_fifo(secret) as opened:
        model = _keras3(tmp_path / "m.keras", lambda v: v.create_dataset(
            "0", shape=(6, 3), dtype="f4", external=[(str(secret), 0, 72)]))
        np.save(tmp_path / "x.npy", np.zeros((4, 6)))
        code, _, err = run("export", model, "--calibration", tmp_path / "x.npy", "--out", tmp_path / "o",
                           "--no-compile")
    assert not opened.is_set(), "the secret was opened"
    _one_line_exit_2(code, err, "model.weights.h5: /layers/dense/vars/0 keeps its data in external storage", tmp_path)


def test_keras3_zip_member_declaring_gigabytes_is_refused(tmp_path):
    path = _keras3(tmp_path / "m.keras", lambda v: v.create_dataset("0", data=np.ones((6, 3))))
    data = bytearray(path.read_bytes())
    # the central directory's uncompressed size of model.weights.h5, as a zip bomb declares it
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    directory = data.rindex(b"PK\x01\x02")  # the last central directory entry: model.weights.h5
    assert data[directory + 46: directory + 46 + len(info.filename)] == info.filename.encode()
    data[directory + 24: directory + 28] = (2**32 - 1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="model.weights.h5 declares 4.0 GiB, more than the memory budget"):
        from_keras_file(path)


def test_text_variable_is_a_weight_error(tmp_path):
    path = _keras3(tmp_path / "m.keras", lambda v: v.create_dataset("0", data=[b"ab"]))
    with pytest.raises(WeightError, match="variable 0 is not numeric"):
        from_keras_file(path)


def test_open_h5_walk_ends_on_hard_link_loops(tmp_path):
    path = tmp_path / "loop.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("a")
        group["again"] = group  # a hard link to itself: the walk must end
        group["k"] = np.ones(3)
    with open_h5(path, str(path)) as f:
        assert f["a/again/again/k"].shape == (3,)
