"""Write outputs all at once or not at all.

A command writes into a temporary sibling of its output and renames it into place only
when everything succeeded, so a failure never leaves a half-written folder or file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from hwprune.errors import OutputExistsError


def _public(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; the renamed output gets what any
    file the user creates gets, ``mode`` minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def check_target(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists already; pass --force to replace it")


@contextlib.contextmanager
def output_dir(path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``path`` when the block succeeds."""
    path = Path(path)
    check_target(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _public(tmp, 0o777)
        if path.exists():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_file(path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary file path that becomes ``path`` when the block succeeds."""
    path = Path(path)
    check_target(path, force)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder; name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            _public(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
