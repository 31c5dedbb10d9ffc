"""An export folder's code is regenerated, not trusted.

The manifest of an export folder holds hashes, not a signature: anyone who edits
``c/model.c`` (a constructor that calls ``system``) or ``hls4ml/build_lib.sh`` can hash
the files again. So before an engine compiles or runs anything from a folder,
``check_export`` has every registered backend that writes code (its ``regenerate``: the C
sources, and the hls4ml project and the RTL when there are) write it again from the
folder's data (``graph.json`` + ``weights.npz``, the options and formats of
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

from hwprune import manifest
from hwprune.backends.registry import BACKENDS
from hwprune.bug_log import trust_folder
from hwprune.errors import FolderError, HwpruneError
from hwprune.exportdir import C_DIR, EXPORT_FILE, HLS4ML_DIR, RTL_DIR
from hwprune.ir.io import load_graph
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
            compared = set()
            for backend in BACKENDS.values():  # C first: registration order
                regenerate = getattr(backend, "regenerate", None)  # a backend that writes only data has none
                written = regenerate(folder, graph, meta, tmp) if regenerate is not None else None
                if written is not None:
                    _compare(folder, tmp, written)
                    compared.add(written)
    except FolderError:
        raise
    except HwpruneError as exc:
        raise FolderError(f"{folder}: its code cannot be regenerated from its graph and options ({exc}); "
                          f"export it again, or pass {TRUST_FLAG} for a folder you trust") from None
    # Fail closed: code that no registered backend regenerated is never compiled as it stands
    # (the built-in backends are registered by importing hwprune.backends.builtin)
    unchecked = [sub for sub in (C_DIR, HLS4ML_DIR, RTL_DIR)
                 if sub not in compared and (sub == C_DIR or (folder / sub).exists())]
    if unchecked:
        raise RuntimeError(f"{folder}: no registered backend regenerates {', '.join(unchecked)}/ "
                           f"(registered: {', '.join(BACKENDS) or 'none'}); import hwprune.backends.builtin first")


def _export_meta(folder: Path) -> dict:
    path = folder / EXPORT_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(f"{path}: missing or unreadable ({type(exc).__name__}); run hwprune export again") from None
    if not isinstance(meta, dict):
        raise FolderError(f"{path}: not an hwprune export description; run hwprune export again")
    return meta


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
