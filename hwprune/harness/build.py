"""Compile C for the host: find a compiler, build executables and objects.

The compiler is ``$CC`` when set (it may carry arguments, e.g. ``ccache gcc``), else the
first of ``cc``, ``gcc``, ``clang`` on the PATH. Any warning is an error: generated code
that warns is a bug in hwprune, not something for the user to ignore. When a build fails,
the same compiler and flags are tried on an empty program: if that fails too, the compiler
is broken (ToolchainError, exit 2), else hwprune's C is (an InternalError with a log, exit 1).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hwprune import children
from hwprune.bug_log import internal_error
from hwprune.errors import ToolchainError
from hwprune.tempdirs import temp_dir

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
        out = children.run([*command, "--version"], timeout=30)
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


def compiles_empty_program(command: Sequence[str], flags: Sequence[str]) -> bool:
    """Whether the compiler ``command`` with ``flags`` compiles an empty program to an object
    file: when it does, a failed build is the fault of the sources, not of the compiler."""
    with temp_dir("probe") as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text("int hwprune_probe(void);\nint hwprune_probe(void) { return 0; }\n")
        try:
            out = children.run([*command, *flags, "-c", str(source), "-o", str(Path(tmp) / "probe.o")],
                               timeout=COMPILE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0


def _run(compiler: Compiler, args: list[str], what: str, flags: Sequence[str] = ()) -> None:
    command = [*compiler.command, *args]
    try:
        out = children.run(command, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what}: the compiler ran longer than {COMPILE_TIMEOUT_S} s: {shlex.join(command)}") from None
    except OSError as exc:
        raise ToolchainError(f"{what}: cannot run {compiler}: {exc}") from None
    if out.returncode != 0:
        output = (out.stderr + out.stdout).strip()
        failed = f"the C compiler failed {what} (exit status {out.returncode}: {shlex.join(command)})"
        if not compiles_empty_program(compiler.command, flags):
            raise ToolchainError(failed + (f":\n{output}" if output else ""))
        first = next((line for line in output.splitlines() if "error" in line), "")
        raise internal_error(f"{compiler} rejected hwprune's generated C {what}" + (f" ({first.strip()})" if first else ""),
                             f"$ {shlex.join(command)}\nexit status {out.returncode}\n{output}")


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
    _run(compiler, args, f"building {Path(output).name}", flags)
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
    _run(compiler, args, f"compiling {Path(source).name}", flags)
    return Path(output)
