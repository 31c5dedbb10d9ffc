"""The persistent build cache (``~/.cache/hwprune``), kept under a size bound.

Compiled hls4ml projects are kept between runs because a compile takes seconds to
minutes of g++. Each entry is a folder; using one refreshes its time, and after a new
entry is added the least recently used ones are removed until the cache fits in
``$HWPRUNE_CACHE_MAX_MB`` megabytes (default ``DEFAULT_MAX_MB``; 0 keeps only the entry
just built). An entry used in the last ``IN_USE_S`` seconds stays, since another process
may be about to run it; the bound may be exceeded by such entries until they age. An
entry is renamed away before it is deleted, so no process ever sees half of one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Optional

from hwprune.errors import OptionError

DEFAULT_MAX_MB = 256
MAX_MB_ENV = "HWPRUNE_CACHE_MAX_MB"
IN_USE_S = 60.0
ABANDONED_S = 2 * 3600  # a hidden build folder older than this was left by a killed build


def cache_root() -> Path:
    """``$HWPRUNE_CACHE_DIR`` or ``~/.cache/hwprune``."""
    return Path(os.environ.get("HWPRUNE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hwprune"))


def max_bytes() -> int:
    text = os.environ.get(MAX_MB_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_MB * 1_000_000
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < 1e9:
        raise OptionError(f"{MAX_MB_ENV}={text!r}: give the cache's bound in megabytes, a number >= 0")
    return int(megabytes * 1_000_000)


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


def touch(entry: Path) -> None:
    """Mark ``entry`` as just used."""
    try:
        os.utime(entry)
    except OSError:
        pass


def evict(folder: Path, keep: Optional[Path] = None, now: Optional[float] = None) -> list[Path]:
    """Remove the least recently used entries of ``folder`` (never ``keep``, nor one used in
    the last ``IN_USE_S`` s) until it holds at most ``max_bytes()``; return the removed ones."""
    limit = max_bytes()
    now = time.time() if now is None else now
    entries = []
    try:
        listing = list(Path(folder).iterdir())
    except OSError:
        return []
    for entry in listing:
        if entry.is_symlink() or not entry.is_dir():
            continue
        try:
            used = entry.stat().st_mtime
        except OSError:
            continue
        if entry.name.startswith("."):  # a build under way, or one a kill abandoned
            if now - used > ABANDONED_S:
                shutil.rmtree(entry, ignore_errors=True)
            continue
        entries.append((used, entry, folder_bytes(entry)))
    total = sum(size for _, _, size in entries)
    removed = []
    for used, entry, size in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if (keep is not None and entry == Path(keep)) or now - used < IN_USE_S:
            continue
        doomed = entry.with_name(f".evicted-{os.getpid()}-{entry.name}")
        try:
            os.rename(entry, doomed)
        except OSError:
            continue  # another process evicted it first
        shutil.rmtree(doomed, ignore_errors=True)
        total -= size
        removed.append(entry)
    return removed
