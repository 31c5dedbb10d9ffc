"""A ``.pt2`` archive is read as data: no pickle in it runs unless --trust-model.

``torch.export.load`` unpickles three parts with ``weights_only=False``: a weight stored with
``use_pickle``, an opaque-object constant and the sample inputs. Each hostile archive below is
a real ``torch.export.save`` file with one part replaced by a pickle whose payload creates a
marker file (``builtins.open(marker, "w")``, no shell involved).
"""

import builtins
import io
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import TrustError
from hwprune.frontends.pt2_scan import _globals_in, check_pt2

VARIANTS = ("weight", "opaque", "inputs")


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


def _torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _hostile(src, dst, variant, marker):
    with zipfile.ZipFile(src) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    root = next(iter(members)).split("/")[0]
    if variant == "weight":  # a weight declared use_pickle: torch.load(weights_only=False)
        key = f"{root}/data/weights/model_weights_config.json"
        config = json.loads(members[key])
        entry = next(iter(config["config"].values()))
        entry["use_pickle"] = True
        members[key] = json.dumps(config).encode()
        members[f"{root}/data/weights/{entry['path_name']}"] = _torch_saved(Payload(marker))
    elif variant == "opaque":  # an opaque-object constant: pickle.loads
        key = f"{root}/data/constants/model_constants_config.json"
        config = json.loads(members[key])
        config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                    "tensor_meta": None}
        members[key] = json.dumps(config).encode()
        members[f"{root}/data/constants/opaque_obj_0"] = pickle.dumps(Payload(marker))
    else:  # the sample inputs: weights_only=True, then a fallback to full unpickling
        members[f"{root}/data/sample_inputs/model.pt"] = _torch_saved(Payload(marker))
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("pt2")
    torch.manual_seed(0)
    program = torch.export.export(nn.Sequential(nn.Linear(6, 3), nn.ReLU()).eval(), (torch.randn(1, 6),))
    torch.export.save(program, root / "ok.pt2")
    for variant in VARIANTS:
        _hostile(root / "ok.pt2", root / f"{variant}.pt2", variant, root / f"marker_{variant}")
    np.save(root / "x.npy", np.random.default_rng(0).normal(size=(20, 6)))
    return root


@pytest.mark.parametrize("variant", VARIANTS)
def test_hostile_pt2_is_refused_and_its_payload_never_runs(variant, archives, tmp_path, run):
    marker = archives / f"marker_{variant}"
    code, _, err = run("export", archives / f"{variant}.pt2", "--calibration", archives / "x.npy",
                       "--out", tmp_path / "o", "--no-compile")
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert "archive member" in err and "io.open" in err and "--trust-model" in err, err
    assert not marker.exists(), "the payload ran"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_trust_model_loads_hostile_pt2_as_torch_does(variant, archives, tmp_path, run):
    marker = archives / f"marker_{variant}"
    try:
        run("export", archives / f"{variant}.pt2", "--calibration", archives / "x.npy", "--out", tmp_path / "o",
            "--no-compile", "--trust-model")
        assert marker.exists(), "--trust-model must hand the archive to torch.export.load unchanged"
    finally:
        marker.unlink(missing_ok=True)


def test_plain_pt2_passes_the_scan_and_exports(archives, tmp_path, run):
    check_pt2(archives / "ok.pt2")
    code, _, err = run("export", archives / "ok.pt2", "--calibration", archives / "x.npy", "--out", tmp_path / "o",
                       "--no-compile")
    assert code == 0, err


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated"], ids=["empty", "bad zip"])
def test_empty_or_damaged_pt2_is_one_line(content, archives, tmp_path, run):
    path = tmp_path / "m.pt2"
    path.write_bytes(content)
    code, out, err = run("export", path, "--calibration", archives / "x.npy", "--out", tmp_path / "o")
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert "not a readable torch.export program" in err and "Traceback" not in err + out


def test_truncated_pt2_prints_no_torch_log_noise(archives, tmp_path):
    """In a real process (pytest's log capture would hide torch's logging from ``run``)."""
    path = tmp_path / "m.pt2"
    data = (archives / "ok.pt2").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = subprocess.run([sys.executable, "-m", "hwprune", "export", str(path), "--calibration",
                             str(archives / "x.npy"), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, len(result.stderr.strip().splitlines())) == (2, 1), result.stderr
    assert "not a readable torch.export program" in result.stderr


def test_scanner_resolves_stack_global_and_memo_and_refuses_what_it_cannot(tmp_path):
    assert _globals_in(pickle.dumps(Payload(tmp_path / "m"), protocol=4)) == ["io.open"]
    assert _globals_in(pickle.dumps(Payload(tmp_path / "m"), protocol=0)) == ["io.open"]
    # STACK_GLOBAL whose module name is computed (not a pushed string): refused as unresolvable
    crafted = b"\x80\x04\x8c\x02io\x8c\x04openN0\x93."
    assert _globals_in(crafted) == ["an unresolvable global (STACK_GLOBAL)"]
    # a memoized string fetched back is resolved
    memo = b"\x80\x04\x8c\x02io\x94\x8c\x04open\x94h\x00h\x01\x93."
    assert _globals_in(memo) == ["io.open"]
    # a pickle hidden after four harmless ones (torch's legacy format reads five in a row)
    chained = pickle.dumps(1) * 4 + pickle.dumps(Payload(tmp_path / "m"))
    assert _globals_in(chained) == ["io.open"]


def test_torchscript_object_constant_is_refused(archives, tmp_path):
    with zipfile.ZipFile(archives / "ok.pt2") as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    root = next(iter(members)).split("/")[0]
    members[f"{root}/data/constants/custom_obj_0"] = b"anything"
    with zipfile.ZipFile(tmp_path / "t.pt2", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(TrustError, match="custom_obj_0.*TorchScript"):
        check_pt2(tmp_path / "t.pt2")
