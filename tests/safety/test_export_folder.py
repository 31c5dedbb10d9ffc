"""One source of truth per export folder, its manifest, permissions, --no-compile, fidelity."""

import json
import os
import stat

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import manifest
from hwprune.outputs import umask


@pytest.fixture
def exported(mlp_files, tmp_path, run):
    code, _, err = run("export", mlp_files[0], "--out", tmp_path / "e", "--calibration", mlp_files[1])
    assert code == 0, err
    return tmp_path / "e"


def test_the_graph_is_stored_once_and_the_manifest_lists_every_file(exported):
    files = manifest.folder_files(exported)
    assert [f for f in files if f.endswith("weights.npz")] == ["weights.npz"]
    assert not (exported / "c" / "graph").exists()
    assert json.loads((exported / "c" / "export.json").read_text())["graph"] == ".."
    assert set(json.loads((exported / manifest.MANIFEST_FILE).read_text())["files"]) == set(files)


def test_ordinary_permissions(exported):
    mask = umask()
    for dirpath, dirs, files in os.walk(exported):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o777 & ~mask, dirpath
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, name)).st_mode) == 0o666 & ~mask, name


def test_verify_compares_with_the_stored_outputs(exported, run):
    """A graph changed by hand and its manifest forged to match still fails: the reference of
    the edited graph disagrees with the stored outputs (and with the C made before the edit)."""
    with np.load(exported / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = next(k for k in sorted(arrays) if k.endswith(".bias"))
    arrays[key] = np.zeros_like(arrays[key])
    np.savez(exported / "weights.npz", **arrays)
    code, _, err = run("verify", exported)
    assert code == 2 and "weights.npz does not match" in err
    manifest.write_pending(exported)
    manifest.finalize(exported)
    code, _, err = run("verify", exported)  # the C no longer is what the edited graph regenerates
    assert code == 2 and "c/export.json differs from what hwprune regenerates" in err
    code, out, err = run("verify", exported, "--json", "--trust-export")
    report = json.loads(out)
    assert code == 1 and not report["bit_exact"]
    assert not report["engines"]["reference/stored y_int"]["bit_exact"]
    assert not report["engines"]["host"]["bit_exact"]
    assert report["engines"]["host/stored y_int"]["bit_exact"]  # the C still computes what was exported


def test_report_rewrites_the_folder_and_keeps_it_valid(exported, run):
    before = (exported / manifest.MANIFEST_FILE).read_text()
    code, _, err = run("report", exported, "--target", "nrf52840")
    assert code == 0, err
    assert (exported / manifest.MANIFEST_FILE).read_text() != before
    assert "nrf52840" in (exported / "report.md").read_text()
    code, _, err = run("verify", exported)
    assert code == 0, err


def test_no_compile_writes_sources_without_a_compiler(mlp_files, tmp_path, run, monkeypatch):
    monkeypatch.setenv("CC", "nosuchcc")
    code, _, err = run("export", mlp_files[0], "--out", tmp_path / "src", "--calibration", mlp_files[1], "--no-compile")
    assert code == 0 and "not compiled or verified (--no-compile)" in err, err
    assert (tmp_path / "src" / "c" / "model.c").is_file()
    assert "**not verified**" in (tmp_path / "src" / "report.md").read_text()
    code, _, err = run("verify", tmp_path / "src")
    assert code == 2 and "no C compiler found" in err  # verify needs one, and says so in one line
    monkeypatch.delenv("CC")
    code, out, err = run("verify", tmp_path / "src")
    assert code == 0 and "bit-exact" in out, err


def test_a_3_bit_export_warns_with_its_figure(tmp_path, run):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data / 16.0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(digits.target)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        optimizer.step()
    torch.save(model.eval(), tmp_path / "d.pt")
    np.save(tmp_path / "x.npy", x[:300])
    code, _, err = run("export", tmp_path / "d.pt", "--out", tmp_path / "e8", "--calibration", tmp_path / "x.npy",
                       "--task", "classification")
    assert code == 0 and "warning" not in err, err
    code, _, err = run("export", tmp_path / "d.pt", "--out", tmp_path / "e3", "--calibration", tmp_path / "x.npy",
                       "--weight-bits", "3", "--activation-bits", "3", "--task", "classification")
    fidelity = json.loads((tmp_path / "e3" / "report.json").read_text())["fidelity"]
    agreement = fidelity["top1_agreement"]
    assert code == 0 and agreement < 0.9 and fidelity["zeroed_by_quantization"]["zeroed"] > 0
    assert f"warning: the integer model agrees with the float model on the top class of only {agreement:.1%}" in err
    assert "try more bits" in err
    assert f"top-1 agreement: {agreement * 100:.1f} %" in (tmp_path / "e3" / "report.md").read_text()


def test_two_exports_of_the_same_model_are_byte_identical(mlp_files, tmp_path, run, exported):
    code, _, err = run("export", mlp_files[0], "--out", tmp_path / "again", "--calibration", mlp_files[1])
    assert code == 0, err
    files = manifest.folder_files(exported)
    assert files == manifest.folder_files(tmp_path / "again")
    for name in [*files, manifest.MANIFEST_FILE]:
        assert (exported / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_an_unwritable_place_is_one_line(mlp_files, tmp_path, run, monkeypatch):
    """Whatever the permission fault (here the temporary sibling cannot be made), one line, exit 2."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    code, _, err = run("export", mlp_files[0], "--out", tmp_path / "p1" / "o", "--calibration", mlp_files[1])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write there (Permission denied)" in err
    assert not (tmp_path / "p1").exists()
