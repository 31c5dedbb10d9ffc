"""Internal failures: a log of what happened and an error that points at it.

A compiler that rejects hwprune's own generated C, a firmware that crashes in the emulator,
a C simulation that aborts: none of these is the user's input, so they are exit 1 with
"this is a bug in hwprune" and the path of a log holding the command and its full output
(the CLI shows one line). The log lives in TMPDIR as ``hwprune-bug-<random>.log``, a file
that the clean-up of stale temporary folders leaves alone.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile

from pathlib import Path
from typing import Optional

from hwprune import __version__
from hwprune.errors import HwpruneError, InternalError, ToolchainError

#: Export folders whose code runs as it is (``--trust-export``): a failure of that code is
#: the folder's, not hwprune's.
_TRUSTED: set[Path] = set()


def trust_folder(folder) -> None:
    _TRUSTED.add(Path(folder).resolve())


def _trusted(path) -> bool:
    path = Path(path).resolve()
    return any(path == folder or folder in path.parents for folder in _TRUSTED)


def write_log(what: str, details: str) -> str:
    """Write ``what`` and ``details`` with the versions that matter to a new log; its path."""
    fd, path = tempfile.mkstemp(prefix="hwprune-bug-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"hwprune {__version__}, Python {sys.version.split()[0]}, {platform.platform()}\n")
        log.write(f"{what}\n\n{details.rstrip()}\n")
    return path


def internal_error(what: str, details: str, code: Optional[Path] = None) -> HwpruneError:
    """An InternalError saying ``what`` failed, with ``details`` (a command, its output) in a
    log; a ToolchainError (exit 2) instead when ``code``, what failed, is in a folder run with
    ``--trust-export``: that code may not be what hwprune wrote."""
    path = write_log(what, details)
    if code is not None and _trusted(code):
        return ToolchainError(f"{what}; the folder's code ran as it is (--trust-export), so it may not be what "
                              f"hwprune wrote; the details are in {path}")
    return InternalError(f"{what}: this is a bug in hwprune; the details are in {path} (please report it with "
                         "that file)")
