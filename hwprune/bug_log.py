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

from hwprune import __version__
from hwprune.errors import InternalError


def write_log(what: str, details: str) -> str:
    """Write ``what`` and ``details`` with the versions that matter to a new log; its path."""
    fd, path = tempfile.mkstemp(prefix="hwprune-bug-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"hwprune {__version__}, Python {sys.version.split()[0]}, {platform.platform()}\n")
        log.write(f"{what}\n\n{details.rstrip()}\n")
    return path


def internal_error(what: str, details: str) -> InternalError:
    """An InternalError saying ``what`` failed, with ``details`` (a command, its output) in a log."""
    path = write_log(what, details)
    return InternalError(f"{what}: this is a bug in hwprune; the details are in {path} (please report it with "
                         "that file)")
