"""Write outputs all at once or not at all, and never destroy what hwprune did not write.

A command writes into a temporary sibling of its output and renames it into place only
when everything succeeded, so a failure never leaves a half-written folder or file (nor
the parent folders it had to create). ``--force`` replaces a folder only when it is wholly
hwprune's (it holds the manifest and nothing the manifest does not list), and never the
current folder or one that holds an input. Outputs get the ordinary permissions of the
umask. Temporary siblings left by a killed run carry its process id and are removed by a
later run once that process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from hwprune import manifest
from hwprune.errors import OutputError, OutputExistsError
from hwprune.tempdirs import pid_alive


def umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask


def _ordinary_mode(path: Path, folder: bool) -> None:
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def refuse_replacing(path: Path, inputs: Iterable = ()) -> None:
    """OutputError when replacing ``path`` would remove the current folder or one of the
    ``inputs`` (paths, None skipped), or write inside an input folder."""
    resolved = Path(path).resolve()
    refuse = f"--force will not replace {path}"
    if _within(Path.cwd().resolve(), resolved):
        raise OutputError(f"{refuse}: it is or holds the current folder; choose a new output folder")
    for given in inputs:
        if given is not None and _within(Path(given).resolve(), resolved):
            raise OutputError(f"{refuse}: it is or holds the input {given}")
        if given is not None and _within(resolved, Path(given).resolve()):  # e.g. a file of the input export folder
            raise OutputError(f"{refuse}: it is inside the input {given}")


def check_target(path: Path, force: bool, inputs: Iterable = (), folder: bool = True) -> None:
    """Fail (OutputError) before any work when ``path`` cannot or must not be written."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(f"{path}: cannot write there, {parent} is a file, not a folder")
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise OutputError(f"{path}: cannot write there, no write permission in {parent}")
                break
        return
    if not force:
        raise OutputExistsError(f"{path} exists already; pass --force to replace it")
    refuse_replacing(path, inputs)
    refuse = f"--force will not replace {path}"
    if folder:
        if path.is_symlink() or not path.is_dir():
            raise OutputError(f"{refuse}: it is a file, not a folder hwprune wrote")
        why = manifest.foreign_content(path)
        if why:
            raise OutputError(f"{refuse}: {why}")
    elif path.is_dir():
        raise OutputError(f"{path} is a folder; name a file")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write there, no write permission in {path.parent}")


def _make_parents(parent: Path) -> list[Path]:
    """Create ``parent`` and its missing ancestors; return the ones created (outermost first)."""
    missing = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
    created = []
    try:
        for p in missing:
            p.mkdir()
            created.append(p)
    except OSError as exc:
        _remove_empty(created)
        raise OutputError(f"{parent}: cannot create the folder ({exc.strerror or exc})") from None
    return created


def _remove_empty(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            break


_STALE = re.compile(r"\.(?P<name>.+)\.hwprune(?P<pid>\d+)-[^/]*\.tmp")


def clean_stale_siblings(path: Path) -> None:
    """Remove ``.<name>.hwprune<pid>-*.tmp`` siblings of ``path`` whose process is gone."""
    try:
        entries = list(Path(path).parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _STALE.fullmatch(entry.name)
        if not match or match["name"] != Path(path).name or pid_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.hwprune{os.getpid()}-"


@contextlib.contextmanager
def output_dir(path, force: bool = False, inputs: Iterable = (), with_manifest: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``path`` when the block succeeds.

    The manifest (every file hashed) is written last, after the block; ``inputs`` are
    paths that ``--force`` must never replace.
    """
    path = Path(path)
    check_target(path, force, inputs, folder=True)
    created = _make_parents(path.parent)
    done = False
    tmp = None
    try:
        clean_stale_siblings(path)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
        except OSError as exc:
            raise OutputError(f"{path}: cannot write there ({exc.strerror or exc})") from None
        _ordinary_mode(tmp, folder=True)
        yield tmp
        if with_manifest:
            manifest.write_pending(tmp)
        old = None
        if path.exists() or path.is_symlink():
            check_target(path, True, inputs, folder=True)  # it may have changed while we worked
            old = path.parent / f"{_temp_prefix(path)}old.tmp"
            os.replace(path, old)
        os.replace(tmp, path)
        if with_manifest:
            manifest.finalize(path)
        done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_empty(created)


@contextlib.contextmanager
def output_file(path, force: bool = False, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield a temporary file path that becomes ``path`` when the block succeeds."""
    path = Path(path)
    check_target(path, force, inputs, folder=False)
    created = _make_parents(path.parent)
    done = False
    tmp = None
    try:
        clean_stale_siblings(path)
        try:
            fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write there ({exc.strerror or exc})") from None
        os.close(fd)
        tmp = Path(name)
        _ordinary_mode(tmp, folder=False)
        yield tmp
        os.replace(tmp, path)
        done = True
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()
        if not done:
            _remove_empty(created)
