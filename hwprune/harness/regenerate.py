"""An export folder's code is regenerated, not trusted.

The manifest of an export folder holds hashes, not a signature: anyone who edits
``c/model.c`` (a constructor that calls ``system``) or ``hls4ml/build_lib.sh`` can hash
the files again. So before an engine compiles or runs anything from a folder,
``check_export`` writes the C sources, and the hls4ml project and the RTL when there are, again
from the folder's data (``graph.json`` + ``weights.npz``, the options and formats of
``export.json``, the stored test vectors for the hls4ml testbench) into a temporary
folder, and compares the two byte for byte: every file of ``c/``, ``hls4ml/`` and ``rtl/``, and
no file more (a stray ``c/stdint.h`` would be found by ``#include <stdint.h>`` through
``-Ic/``). Exports are reproducible (no timestamp, no absolute path, hls4ml's random
stamp replaced by a hash), so a folder hwprune wrote passes; any difference is refused
with one line naming the first differing file. ``trust=True`` (``--trust-export``) skips
the comparison and warns.

What is compared is what an engine compiles, executes or reads to run: the whole of
``c/``, ``hls4ml/`` and ``rtl/`` (Verilator's testbench and sources). The other files (``vectors.npz``, ``report.*``, ``export.json``)
are data, checked against the manifest's hashes only. An export written by another
hwprune version regenerates differently (the banner names the version) and is refused:
export it again from its folder (``hwprune export DIR --out NEW``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import manifest
from hwprune.backends.c import MANIFEST as C_MANIFEST, export_c
from hwprune.backends.c_int8 import write_int8_c
from hwprune.backends.hls4ml.options import options_from_json
from hwprune.backends.hls4ml.project import export_hls4ml
from hwprune.backends.rtl import RtlOptions, export_rtl
from hwprune.bug_log import trust_folder
from hwprune.errors import FolderError, HwpruneError
from hwprune.exportdir import C_DIR, EXPORT_FILE, HLS4ML_DIR, RTL_DIR, read_vectors
from hwprune.harness.select import export_target
from hwprune.ir.int8 import is_int8_graph
from hwprune.ir.io import load_graph
from hwprune.reference import run
from hwprune.tempdirs import temp_dir

TRUST_FLAG = "--trust-export"


def check_export(folder, trust: bool = False) -> dict:
    """The manifest of the export ``folder`` after checking it (``manifest.check``: paths
    inside the folder, sizes, hashes) and its code (``check_code``)."""
    data = manifest.check(Path(folder))
    check_code(folder, trust)
    return data


def check_code(folder, trust: bool = False) -> None:
    """FolderError unless the C and hls4ml project of ``folder`` (whose manifest was
    checked) are what hwprune writes from its graph; ``trust`` skips the comparison and
    warns. Call it before an engine compiles or runs anything from the folder."""
    folder = Path(folder)
    if trust:
        trust_folder(folder)
        warnings.warn(f"{TRUST_FLAG}: the C sources and hls4ml project of {folder} are compiled and run as they "
                      "are, without comparing them with what hwprune regenerates from its graph")
        return
    compare_with_regenerated(folder)


def compare_with_regenerated(folder: Path) -> None:
    """FolderError naming the first file of ``c/`` or ``hls4ml/`` that differs from what
    hwprune regenerates from the folder's graph and options (or that only one side has)."""
    folder = Path(folder)
    meta = _export_meta(folder)
    try:
        graph = load_graph(folder)
        with temp_dir("regenerate") as tmp:
            _regenerate_c(folder, graph, meta, tmp)
            _compare(folder, tmp, C_DIR)
            if "hls4ml" in meta or (folder / HLS4ML_DIR).exists():
                _regenerate_hls4ml(folder, graph, meta, tmp)
                _compare(folder, tmp, HLS4ML_DIR)
            if "rtl" in meta or (folder / RTL_DIR).exists():  # what Verilator compiles
                _regenerate_rtl(folder, graph, meta, tmp)
                _compare(folder, tmp, RTL_DIR)
    except FolderError:
        raise
    except HwpruneError as exc:
        raise FolderError(f"{folder}: its code cannot be regenerated from its graph and options ({exc}); "
                          f"export it again, or pass {TRUST_FLAG} for a folder you trust") from None


def _export_meta(folder: Path) -> dict:
    path = folder / EXPORT_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(f"{path}: missing or unreadable ({type(exc).__name__}); run hwprune export again") from None
    if not isinstance(meta, dict):
        raise FolderError(f"{path}: not an hwprune export description; run hwprune export again")
    return meta


def _regenerate_c(folder: Path, graph, meta: dict, tmp: Path) -> None:
    if is_int8_graph(graph):  # TFLite's int8 dialect: one source, no format choice
        write_int8_c(graph, tmp / C_DIR)
        return
    formats = meta.get("formats", {})
    optimize = meta.get("optimize", "balanced")
    if not isinstance(formats, dict) or not all(isinstance(v, str) for v in formats.values()):
        raise FolderError(f"{folder / EXPORT_FILE}: \"formats\" must map layer names to format names")
    try:
        target, _ = export_target(meta)
    except (TypeError, ValueError) as exc:
        raise FolderError(f"{folder / EXPORT_FILE}: unreadable target_spec ({exc})") from None
    # The formats the export chose, per layer: encoding a layer in a named format is
    # deterministic, so the choice (cost model, measured cycles) need not be repeated.
    export_c(graph, tmp / C_DIR, dict(formats), optimize, target, _measured(folder, optimize), graph_dir=tmp)


def _measured(folder: Path, optimize: str) -> Optional[dict]:
    """The cycles ``--optimize speed`` measured in the emulator, as c/export.json records
    them (they are only printed back into that file)."""
    if optimize != "speed":
        return None
    try:
        recorded = json.loads((folder / C_DIR / C_MANIFEST).read_text()).get("optimize", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None  # the comparison names the file
    cycles = recorded.get("measured_cycles") if isinstance(recorded, dict) else None
    if not isinstance(cycles, dict):
        return None
    out = {}
    for key, value in cycles.items():
        layer, _, fmt = str(key).rpartition(":")
        if not layer or not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        out[(layer, fmt)] = value
    return out


def _regenerate_hls4ml(folder: Path, graph, meta: dict, tmp: Path) -> None:
    options = meta.get("hls4ml")
    if not isinstance(options, dict):
        raise FolderError(f"{folder}: an {HLS4ML_DIR}/ project but no hls4ml options in {EXPORT_FILE}; "
                          "run hwprune export again")
    try:
        hls = options_from_json(options)
    except (TypeError, ValueError) as exc:
        raise FolderError(f"{folder / EXPORT_FILE}: unreadable hls4ml options ({exc})") from None
    x_int = np.asarray(read_vectors(folder, graph)["x_int"], dtype=np.int64)
    # The testbench holds the reference's outputs, as the export computed them (verify
    # compares the stored ones with the reference separately).
    export_hls4ml(graph, tmp / HLS4ML_DIR, hls, x_int, run(graph, x_int))


def _regenerate_rtl(folder: Path, graph, meta: dict, tmp: Path) -> None:
    options = meta.get("rtl")
    if not isinstance(options, dict):
        raise FolderError(f"{folder}: an {RTL_DIR}/ folder but no rtl options in {EXPORT_FILE}; run hwprune export again")
    try:
        rtl = RtlOptions(**options)
    except TypeError as exc:
        raise FolderError(f"{folder / EXPORT_FILE}: unreadable rtl options ({exc})") from None
    x_int = np.asarray(read_vectors(folder, graph)["x_int"], dtype=np.int64)
    export_rtl(graph, tmp / RTL_DIR, rtl, x_int, run(graph, x_int))


def _compare(folder: Path, regenerated: Path, sub: str) -> None:
    held = set(manifest.folder_files(folder / sub)) if (folder / sub).is_dir() else set()
    fresh = set(manifest.folder_files(regenerated / sub))
    for name in sorted(held | fresh):
        path = f"{sub}/{name}"
        if name not in fresh:
            raise FolderError(f"{folder}: {path} is not a file hwprune writes there; refusing to compile or run the "
                              f"folder's code (remove the file, export again, or pass {TRUST_FLAG})")
        if name not in held:
            raise FolderError(f"{folder}: {path} is missing; export again")
        if (folder / sub / name).read_bytes() != (regenerated / sub / name).read_bytes():
            raise FolderError(f"{folder}: {path} differs from what hwprune regenerates from the folder's graph and "
                              f"options; refusing to compile or run it (export again, or pass {TRUST_FLAG} for a "
                              "folder you trust)")
