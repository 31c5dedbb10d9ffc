"""Temporary folders in TMPDIR that never outlive their process for long.

Every folder is named ``hwprune-<kind>-<pid>-<random>``: removed on every exit path that
runs Python code (``temp_dir`` is a context manager, ``process_dir`` is removed at exit),
and a folder whose process was killed is removed by the next hwprune process that makes
one, once it sees that the process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

_NAME = re.compile(r"hwprune-[a-z]+-(?P<pid>\d+)-[^/]+")
_SWEPT: list[bool] = []
_PROCESS_DIRS: dict[str, Path] = {}


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(directory=None) -> list[Path]:
    """Remove the hwprune temporary folders of processes that no longer run; return them."""
    directory = Path(directory or tempfile.gettempdir())
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not pid_alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _sweep_once() -> None:
    if not _SWEPT:
        _SWEPT.append(True)
        clean_stale()


def make_dir(kind: str) -> Path:
    _sweep_once()
    return Path(tempfile.mkdtemp(prefix=f"hwprune-{kind}-{os.getpid()}-"))


@contextlib.contextmanager
def temp_dir(kind: str) -> Iterator[Path]:
    """A fresh temporary folder, removed when the block ends however it ends."""
    path = make_dir(kind)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def process_dir(kind: str) -> Path:
    """One temporary folder per process and kind (e.g. a build cache), removed at exit."""
    if kind not in _PROCESS_DIRS or not _PROCESS_DIRS[kind].is_dir():
        path = make_dir(kind)
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _PROCESS_DIRS[kind] = path
    return _PROCESS_DIRS[kind]
