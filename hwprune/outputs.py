"""Write outputs all at once or not at all, and never destroy what hwprune did not write.

A command writes into a temporary sibling of its output and renames it into place only
when everything succeeded, so a failure never leaves a half-written folder or file (nor
the parent folders it had to create). ``--force`` replaces a folder only when it is wholly
hwprune's (it holds the manifest and nothing the manifest does not list), and never the
current folder, one that holds an input, a symbolic link or a folder the user made. An
output is never written inside an input folder. Outputs get the ordinary permissions of
the umask.

Replacing a folder is one atomic step on Linux: ``renameat2(RENAME_EXCHANGE)`` swaps the
complete new folder with the old one, so the path always names a complete folder, and the
old one is removed afterwards. Elsewhere (or on a file system without the exchange) the
old folder is renamed aside first; a run killed between the two renames leaves it aside
under ``.<name>.hwprune<pid>-old.tmp``, and the next run puts it back before anything else.
Temporary siblings left by a killed run carry its process id and are removed by a later
run once that process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

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


def refuse_inside_inputs(path: Path, inputs: Iterable = ()) -> None:
    """OutputError when ``path`` lies inside an input folder (e.g. a file of the input export)."""
    resolved = Path(path).resolve()
    for given in inputs:
        if given is not None and Path(given).is_dir() and _within(resolved, Path(given).resolve()):
            raise OutputError(f"{path}: inside the input {given}, which hwprune never writes into; "
                              "choose an output outside it")


def check_target(path: Path, force: bool, inputs: Iterable = (), folder: bool = True,
                 foreign: Optional[Callable[[Path], Optional[str]]] = None) -> None:
    """Fail (OutputError) before any work when ``path`` cannot or must not be written.

    ``foreign(path)`` says why an existing folder is not wholly hwprune's (None when it is);
    by default the manifest's verdict."""
    path = Path(path)
    recover_aside(path)
    if not path.exists() and not path.is_symlink():
        refuse_inside_inputs(path, inputs)
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
    if path.is_symlink():  # the link is the user's; replacing it would also hide where it pointed
        raise OutputError(f"{refuse}: it is a symbolic link; name the folder or file itself, or a new path")
    if folder:
        if not path.is_dir():
            raise OutputError(f"{refuse}: it is a file, not a folder hwprune wrote")
        why = (foreign or manifest.foreign_content)(path)
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


_STALE = re.compile(r"\.(?P<name>.+)\.hwprune(?P<pid>\d+)-(?P<rest>[^/]*)\.tmp")
_ASIDE = "old"  # the ``rest`` of the name a folder being replaced is renamed aside to


def _aside_name(path: Path, pid: int) -> Path:
    return path.parent / f".{path.name}.hwprune{pid}-{_ASIDE}.tmp"


def is_temporary_sibling(path: Path) -> bool:
    """Whether ``path`` is named as the temporary sibling of an output (``.<name>.hwprune<pid>-*.tmp``)."""
    return _STALE.fullmatch(Path(path).name) is not None


def recover_aside(path: Path) -> None:
    """Put back the folder a killed run renamed aside while replacing ``path`` (the
    fallback without an atomic exchange): the user's previous folder, whole."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        return
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _STALE.fullmatch(entry.name)
        if (match and match["name"] == path.name and match["rest"] == _ASIDE and not pid_alive(int(match["pid"]))
                and entry.is_dir() and not entry.is_symlink()):
            with contextlib.suppress(OSError):
                os.rename(entry, path)
            return


def clean_stale_siblings(path: Path) -> None:
    """Remove ``.<name>.hwprune<pid>-*.tmp`` siblings of ``path`` whose process is gone
    (after putting back a folder a killed run left aside)."""
    recover_aside(path)
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


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_LIBC: list = []


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    when the system or the file system cannot, an OSError for any other failure."""
    if not sys.platform.startswith("linux"):
        return False
    if not _LIBC:
        _LIBC.append(getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None))
    renameat2 = _LIBC[0]
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # no such call, or not on this file system
        return False
    raise OSError(code, os.strerror(code), str(second))


def swap_into_place(new: Path, path: Path) -> None:
    """Make ``path`` name the complete folder ``new`` and remove the folder it named
    before. With the exchange, ``path`` names a complete folder at every moment; without
    it, the old folder waits aside under a name ``recover_aside`` knows until ``new`` is in
    place. A kill at any point leaves the old folder whole or the new one in place."""
    new, path = Path(new), Path(path)
    if not (path.exists() or path.is_symlink()):
        os.rename(new, path)
        return
    if exchange(new, path):
        old = new  # the exchange left the old folder under the temporary name
    else:
        old = _aside_name(path, os.getpid())
        os.rename(path, old)
        try:
            os.rename(new, path)
        except OSError:
            os.rename(old, path)
            raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def output_dir(path, force: bool = False, inputs: Iterable = (), with_manifest: bool = True,
               foreign: Optional[Callable[[Path], Optional[str]]] = None) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``path`` when the block succeeds.

    The manifest (every file hashed) is written last, after the block, so the folder is
    complete before it is swapped into place; ``inputs`` are paths that ``--force`` must
    never replace; ``foreign`` judges an existing folder (see ``check_target``).
    """
    path = Path(path)
    check_target(path, force, inputs, folder=True, foreign=foreign)
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
            manifest.finalize(tmp)
        if path.exists() or path.is_symlink():
            check_target(path, True, inputs, folder=True, foreign=foreign)  # it may have changed while we worked
        swap_into_place(tmp, path)
        done = True
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
