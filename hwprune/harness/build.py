"""Compile C for the host: find a compiler, build executables and objects.

The compiler is ``$CC`` when set (it may carry arguments, e.g. ``ccache gcc``), else the
first of ``cc``, ``gcc``, ``clang`` on the PATH. Any warning is an error: generated code
that warns is a bug in hwprune, not something for the user to ignore.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hwprune.errors import ToolchainError

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
HOST_FLAGS = (*WARNINGS, "-O2")
# Sizes of a model alone: -Os as firmware would use, and no unwind tables, which a
# microcontroller build does not carry either.
SIZE_FLAGS = (*WARNINGS, "-Os", "-fno-asynchronous-unwind-tables")
COMPILE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Compiler:
    """A host C compiler: the command (program and any fixed arguments) and its version line."""

    command: tuple[str, ...]
    version: str

    def __str__(self) -> str:
        return " ".join(self.command)


def _version(command: Sequence[str]) -> str:
    try:
        out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def find_cc() -> Compiler:
    """The host C compiler, or ToolchainError saying what was tried."""
    tried = []
    env_cc = os.environ.get("CC", "").strip()
    if env_cc:
        try:
            command = tuple(shlex.split(env_cc))
        except ValueError as exc:  # an unbalanced quote
            raise ToolchainError(f"$CC is {env_cc!r}, which is not a valid command line ({exc}); set CC to a "
                                 "compiler and its flags, quoted as in a shell") from None
        if not command:
            raise ToolchainError(f"$CC is {env_cc!r}, which names no compiler; set CC or unset it")
        program = shutil.which(command[0])
        if program is None:
            raise ToolchainError(f"no C compiler found: $CC is {env_cc!r}, and {command[0]!r} is not on the PATH; "
                                 "set CC or install gcc or clang")
        return Compiler((program, *command[1:]), _version((program, *command[1:])))
    for name in ("cc", "gcc", "clang"):
        tried.append(name)
        program = shutil.which(name)
        if program:
            return Compiler((program,), _version((program,)))
    raise ToolchainError(
        f"no C compiler found (tried $CC, then {', '.join(tried)} on the PATH): set CC or install gcc or clang"
    )


def _run(compiler: Compiler, args: list[str], what: str) -> None:
    command = [*compiler.command, *args]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what}: the compiler ran longer than {COMPILE_TIMEOUT_S} s: {shlex.join(command)}") from None
    except OSError as exc:
        raise ToolchainError(f"{what}: cannot run {compiler}: {exc}") from None
    if out.returncode != 0:
        output = (out.stderr + out.stdout).strip()
        raise ToolchainError(f"the C compiler failed {what} (exit status {out.returncode}: {shlex.join(command)})"
                             + (f":\n{output}" if output else ""))


def compile_executable(
    sources: Sequence[Path],
    output: Path,
    include_dirs: Sequence[Path] = (),
    defines: Sequence[str] = (),
    flags: Sequence[str] = HOST_FLAGS,
    compiler: Compiler | None = None,
) -> Path:
    """Compile and link ``sources`` into the executable ``output``."""
    compiler = compiler or find_cc()
    args = [*flags, *(f"-I{d}" for d in include_dirs), *(f"-D{d}" for d in defines)]
    args += [str(s) for s in sources] + ["-o", str(output)]
    _run(compiler, args, f"building {Path(output).name}")
    return Path(output)


def compile_object(
    source: Path,
    output: Path,
    include_dirs: Sequence[Path] = (),
    defines: Sequence[str] = (),
    flags: Sequence[str] = SIZE_FLAGS,
    compiler: Compiler | None = None,
) -> Path:
    """Compile one source file to the object file ``output`` (no linking)."""
    compiler = compiler or find_cc()
    args = [*flags, *(f"-I{d}" for d in include_dirs), *(f"-D{d}" for d in defines)]
    args += ["-c", str(source), "-o", str(output)]
    _run(compiler, args, f"compiling {Path(source).name}")
    return Path(output)
