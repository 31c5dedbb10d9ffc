"""Child processes (compilers, hls4ml's build_lib.sh, the C simulation, yosys) that never
outlive hwprune.

``run`` is ``subprocess.run`` with output captured, for every tool hwprune starts. Each
child gets a process group of its own, and the whole group (the shell of build_lib.sh and
its g++, zig and its clang) is killed on every exit path: a timeout, an exception,
Ctrl-C or SIGTERM (which the CLI turns into KeyboardInterrupt), and a normal return (a
grandchild left running would be an orphan). A SIGKILLed hwprune runs no code at all, so
two things act without it: on Linux the child is started with ``PR_SET_PDEATHSIG`` (the
kernel kills it when hwprune dies), and one reaper process per hwprune process holds the
read end of a pipe listing the live groups: when hwprune dies the pipe closes and the
reaper kills every group still listed, grandchildren included.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional, Sequence

_PR_SET_PDEATHSIG = 1
_REAPER_CODE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    sign, _, pgid = line.strip().partition(" ")
    (groups.add if sign == "+" else groups.discard)(int(pgid))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_LOCK = threading.Lock()
_REAPER: list[subprocess.Popen] = []


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - every Linux has a libc
        return None


_LINUX_LIBC = _libc() if sys.platform.startswith("linux") else None


def _die_with(parent: int):
    """preexec_fn: the kernel sends SIGKILL to the child when the thread that forked it
    exits; a parent gone before that call means the child must not run at all."""
    def preexec() -> None:
        if _LINUX_LIBC is not None:
            _LINUX_LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _reaper_pipe():
    """The reaper's stdin (started on first use), or None when it cannot run."""
    with _LOCK:
        if not _REAPER or _REAPER[0].poll() is not None:
            try:
                reaper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _REAPER_CODE], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True, text=True)
            except OSError:
                return None
            _REAPER[:] = [reaper]
        return _REAPER[0].stdin


def _tell_reaper(sign: str, pgid: int) -> None:
    pipe = _reaper_pipe()
    if pipe is None:
        return
    try:
        with _LOCK:
            pipe.write(f"{sign} {pgid}\n")
            pipe.flush()
    except (OSError, ValueError):  # the reaper is gone: the other paths still kill the group
        pass


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:  # the group is empty already
        pass


POLL_S = 0.5  # how often ``poll`` runs while a streamed tool is silent


def _streamed(proc: subprocess.Popen, timeout: Optional[float], on_line: Callable[[str], None],
              poll: Optional[Callable[[], None]] = None) -> tuple[str, str]:
    """``proc``'s output read line by line as it comes, each line handed to ``on_line`` in
    this thread, ``poll`` called at least every POLL_S seconds (either may raise to stop the
    tool); ``subprocess.TimeoutExpired`` once ``timeout`` seconds have passed."""
    lines: queue.Queue = queue.Queue()
    kept: dict = {"out": [], "err": []}

    def read(stream, key: str) -> None:
        for line in stream:
            kept[key].append(line)
            lines.put(line)
        lines.put(None)

    readers = [threading.Thread(target=read, args=(s, k), daemon=True) for s, k in ((proc.stdout, "out"),
                                                                                      (proc.stderr, "err"))]
    for reader in readers:
        reader.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    open_streams = len(readers)
    while open_streams:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        if poll is not None:
            poll()
            wait = POLL_S if wait is None else min(wait, POLL_S)
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            if poll is not None:
                continue  # the deadline is checked at the top
            raise subprocess.TimeoutExpired(proc.args, timeout) from None
        if line is None:
            open_streams -= 1
        else:
            on_line(line.rstrip("\n"))
    proc.wait()
    return "".join(kept["out"]), "".join(kept["err"])


def run(command: Sequence[str], timeout: Optional[float] = None, cwd=None, env=None,
        text: bool = True, on_line: Optional[Callable[[str], None]] = None,
        poll: Optional[Callable[[], None]] = None) -> subprocess.CompletedProcess:
    """Run ``command`` to its end, its output captured; ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds. Its process group is gone when this returns or raises. ``on_line``
    (text output only) sees each line of its output as the tool writes it (a progress display);
    ``poll`` (with ``on_line``) runs at least every POLL_S seconds while the tool is silent.
    An exception either raises stops the tool and propagates (a budget the caller keeps)."""
    proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                            text=text, start_new_session=True, preexec_fn=_die_with(os.getpid()))
    _tell_reaper("+", proc.pid)
    streamed = on_line is not None and text
    try:
        if streamed:
            stdout, stderr = _streamed(proc, timeout, on_line, poll)
        else:
            stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:  # a timeout, Ctrl-C, SIGTERM, anything: the tool must not run on
        kill_group(proc.pid)
        proc.wait() if streamed else proc.communicate()  # streamed: the readers drain the pipes
        raise
    finally:
        kill_group(proc.pid)  # grandchildren the tool left behind
        _tell_reaper("-", proc.pid)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
