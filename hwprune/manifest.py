"""The manifest of an output folder: what hwprune wrote there, with a hash of every file.

``outputs.output_dir`` writes it last, so a folder that holds it is complete: a folder
left by a kill, or one whose files were edited by hand, never passes ``check``. It is
generic: every file below the folder is listed, so a new backend subfolder (``hls4ml/``)
or report section needs no change here.

The manifest is written under a pending name inside the temporary folder, renamed to its
final name once every file is hashed, and only then is the folder swapped into place
(``outputs.swap_into_place``). A kill before that rename leaves a temporary folder with no
manifest; a kill after it leaves a complete one under a hidden temporary name, which the
next run removes (``outputs.clean_stale_siblings``) and nothing reads as an export.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable, Optional

from hwprune import __version__
from hwprune.errors import FolderError

MANIFEST_FILE = "hwprune-manifest.json"
PENDING_FILE = ".hwprune-manifest.pending.json"
FORMAT = "hwprune-manifest"
VERSION = 1
_CHUNK = 1 << 20
# No file hwprune writes comes near this (the weights of a model that fits an FPGA or a
# microcontroller are megabytes); a larger one, such as a sparse file of hundreds of GB
# planted in a folder, is refused from its size before a byte of it is read.
MAX_FILE_BYTES = 1 << 30
MAX_MANIFEST_BYTES = 16 << 20


def file_hash(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The SHA-256 of ``path``, reading at most ``limit`` bytes (FolderError past that)."""
    digest = hashlib.sha256()
    read = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            read += len(block)
            if read > limit:
                raise FolderError(f"{path}: larger than {limit} bytes; no file of an hwprune export is")
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[str]:
    """Every file below ``folder`` as a sorted POSIX relative path, the manifests left out."""
    folder = Path(folder)
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel not in (MANIFEST_FILE, PENDING_FILE):
                out.append(rel)
    return sorted(out)


def build(folder: Path, files: Optional[Iterable[str]] = None) -> dict:
    folder = Path(folder)
    names = folder_files(folder) if files is None else sorted(files)
    return {"format": FORMAT, "version": VERSION, "hwprune_version": __version__,
            "files": {name: file_hash(folder / name) for name in names}}


def write_pending(folder: Path, files: Optional[Iterable[str]] = None) -> None:
    """Hash every file of ``folder`` (or ``files``) into its pending manifest, the last file written."""
    folder = Path(folder)
    text = json.dumps(build(folder, files), indent=1, sort_keys=True) + "\n"
    (folder / PENDING_FILE).write_text(text)


def finalize(folder: Path) -> None:
    """Give the pending manifest its final name: from now on the folder is complete."""
    os.replace(Path(folder) / PENDING_FILE, Path(folder) / MANIFEST_FILE)


def read(folder: Path, pending_ok: bool = False) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file() and pending_ok and (folder / PENDING_FILE).is_file():
        path = folder / PENDING_FILE
    if not path.is_file():
        raise FolderError(f"{folder}: no {MANIFEST_FILE}, so not a complete hwprune export (interrupted, or made "
                          "by hand); run hwprune export again")
    if path.is_symlink():
        raise FolderError(f"{path}: a symbolic link; hwprune writes its manifest as a plain file")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise FolderError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes, not a manifest hwprune wrote")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise FolderError(f"{path}: unreadable manifest ({type(exc).__name__}); run hwprune export again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise FolderError(f"{path}: not an hwprune manifest; run hwprune export again")
    return data


def check(folder: Path) -> dict:
    """The manifest of a complete folder whose listed files all match their hashes, or a
    FolderError naming the first file that is missing or differs."""
    folder = Path(folder)
    if folder.is_file():
        raise FolderError(f"{folder}: a file, not an export folder (give the folder hwprune export wrote)")
    if not folder.is_dir():
        raise FolderError(f"{folder}: no such folder")
    if not (folder / MANIFEST_FILE).is_file():
        _not_an_export(folder)
    data = read(folder)
    check_paths(folder, data["files"])
    for name, digest in sorted(data["files"].items()):
        path = folder / name
        if not path.is_file():
            raise FolderError(f"{folder}: {name} is listed in {MANIFEST_FILE} but missing; run hwprune export again")
        if file_hash(path) != digest:
            raise FolderError(f"{folder}: {name} does not match {MANIFEST_FILE} (changed after export); "
                              "run hwprune export again")
    return data


def check_paths(folder: Path, names: Iterable) -> None:
    """FolderError unless every listed name is a relative path inside ``folder`` and every
    file below ``folder`` stays inside it and within ``MAX_FILE_BYTES``: checked from the
    names and ``lstat`` alone, before any file is opened. Symbolic links are followed only
    to say where they lead; one that leaves the folder is refused, listed or not (the
    readers of a folder open graph.json, the C sources, ... by name)."""
    folder = Path(folder)
    for name in names:
        parts = PurePosixPath(name).parts if isinstance(name, str) else ()
        if (not parts or "\\" in name or "\0" in name or PurePosixPath(name).is_absolute()
                or PureWindowsPath(name).drive or any(p in ("..", ".") for p in parts)):
            raise FolderError(f"{folder}: {MANIFEST_FILE} lists {name!r}, a path outside the folder; hwprune lists "
                              "only relative paths inside it; run hwprune export again")
    root = folder.resolve()
    for dirpath, dirs, files in os.walk(folder):  # never follows a linked folder
        for name in [*dirs, *files]:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = path.resolve()
                if target != root and root not in target.parents:
                    raise FolderError(f"{folder}: {rel} is a symbolic link to {target}, outside the folder")
                if not target.exists():
                    continue  # a dangling link: a listed one is reported missing below
                st = target.stat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise FolderError(f"{folder}: {rel} is not a regular file (a device, socket or pipe)")
            if st.st_size > MAX_FILE_BYTES:
                raise FolderError(f"{folder}: {rel} holds {st.st_size} bytes, more than any file of an hwprune "
                                  f"export ({MAX_FILE_BYTES} bytes)")


def _not_an_export(folder: Path) -> None:
    """A clearer FolderError for the folders users mistake for an export: a folder inside
    one (c/, hls4ml/) and a sweep's folder."""
    for parent in folder.resolve().parents:
        if (parent / MANIFEST_FILE).is_file():
            raise FolderError(f"{folder}: a folder inside the export {parent}; give the export folder itself")
    if (folder / "sweep.json").is_file():
        raise FolderError(f"{folder}: a sweep folder, not an export; its best model's export is {folder / 'best'}")


def foreign_content(folder: Path) -> Optional[str]:
    """Why ``folder`` is not wholly hwprune's (None when it is): no manifest, or files the
    manifest does not list. A pending manifest counts, so a folder left by a kill between
    the two renames can still be replaced."""
    folder = Path(folder)
    try:
        data = read(folder, pending_ok=True)
    except FolderError:
        return f"it holds no {MANIFEST_FILE}, so hwprune did not write it"
    listed = set(data["files"])
    for root, _dirs, files in os.walk(folder):
        for name in files:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel not in listed and rel not in (MANIFEST_FILE, PENDING_FILE) and not _STAGED.fullmatch(name):
                return f"it holds {rel}, which hwprune did not write"
    return None


def replace_files(folder: Path, sources: Path) -> None:
    """Put the files of ``sources`` into the complete folder ``folder`` and rewrite its
    manifest. The new manifest is written (pending) before the old one goes, so a kill
    half-way leaves a folder that ``check`` refuses and ``--force`` may replace."""
    folder, sources = Path(folder), Path(sources)
    listed = set(check(folder)["files"])
    new = folder_files(sources)
    staged = {}
    try:
        for name in new:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            stage = target.with_name(f".{target.name}.hwprune{os.getpid()}-new.tmp")
            stage.write_bytes((sources / name).read_bytes())
            staged[name] = stage
        files = {name: file_hash(staged[name] if name in staged else folder / name) for name in sorted(listed | set(new))}
        text = json.dumps({"format": FORMAT, "version": VERSION, "hwprune_version": __version__, "files": files},
                          indent=1, sort_keys=True) + "\n"
        (folder / PENDING_FILE).write_text(text)
        (folder / MANIFEST_FILE).unlink()
        for name, stage in staged.items():
            os.replace(stage, folder / name)
        finalize(folder)
    finally:
        for stage in staged.values():
            if stage.exists():
                stage.unlink()


_STAGED = re.compile(r"\..+\.hwprune\d+-[^/]*\.tmp")
