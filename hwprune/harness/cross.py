"""Cross-compile an export into Cortex-M firmware (an ELF) and read its figures.

The compiler is clang from the ``ziglang`` pip package (``python -m ziglang cc``), or
``arm-none-eabi-gcc`` when asked for (``cc="gcc"`` or ``HWPRUNE_MCU_CC=gcc``) and on the
PATH. The firmware is the export's C plus three files copied verbatim from
``templates/mcu/``: ``startup.c`` (vector table, reset handler), ``harness.c`` (the
buffers and the entry point the emulator calls) and ``link.ld``.

Each layer kernel must stay a function of its own so that the emulator can attribute
instructions to layers by PC range: clang builds with ``-finline-hint-functions`` (only
``inline`` functions, i.e. hwprune_fixed.h's casts, are inlined), gcc with the matching
``-fno-inline-*`` options. That costs one call per layer.
Frame pointers are omitted for both compilers (``-fomit-frame-pointer``).

Flash = text + rodata + data of the ELF, RAM = data + bss (plus the stack the emulator
measures); the harness's input/output/trace buffers sit in ``.hwprune_io`` and are
counted apart (``io_bytes``).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from hwprune import children
from hwprune.backends.c import C_SOURCES, read_manifest
from hwprune.bug_log import internal_error
from hwprune.errors import TargetError, ToolchainError
from hwprune.harness.build import COMPILE_TIMEOUT_S, compiles_empty_program
from hwprune.harness.measure import section_sizes
from hwprune.paths import templates_dir
from hwprune.tempdirs import process_dir

MCU_TEMPLATES = ("startup.c", "harness.c", "link.ld")
CC_ENV = "HWPRUNE_MCU_CC"
OPT_LEVELS = ("-O2", "-Os", "-O3", "-O1", "-O0")
ENTRY = "hwprune_mcu_infer"


@dataclass(frozen=True)
class Core:
    """A Cortex-M core: how each compiler targets it and which unicorn model runs it."""

    name: str
    zig_target: str  # clang's -target and -mcpu for zig cc
    zig_cpu: str
    gcc_flags: tuple[str, ...]
    unicorn_model: str  # a UC_CPU_ARM_* name
    dsp: bool  # the DSP extension (SMLAD, SXTB16, ...)


CORES = {
    c.name: c
    for c in (
        # unicorn has no M0+ model; the M0 runs the same ARMv6-M instruction set.
        Core("cortex-m0plus", "thumb-freestanding-eabi", "cortex_m0plus",
             ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"), "UC_CPU_ARM_CORTEX_M0", False),
        Core("cortex-m4", "thumb-freestanding-eabihf", "cortex_m4",
             ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"), "UC_CPU_ARM_CORTEX_M4", True),
        Core("cortex-m7", "thumb-freestanding-eabihf", "cortex_m7",
             ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=soft"), "UC_CPU_ARM_CORTEX_M7", True),
        # LLVM's cortex-m33 leaves the optional DSP extension out (gcc's has it); the parts
        # hwprune targets (nRF54L15, ...) have it, and the emulated M33 runs it
        Core("cortex-m33", "thumb-freestanding-eabihf", "cortex_m33+dsp",
             ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=soft"), "UC_CPU_ARM_CORTEX_M33", True),
    )
}


def get_core(name: str) -> Core:
    if name not in CORES:
        raise TargetError(f"unknown Cortex-M core {name!r}; known cores are {', '.join(CORES)}")
    return CORES[name]


@dataclass(frozen=True)
class CrossCompiler:
    kind: str  # "clang" (zig) or "gcc"
    command: tuple[str, ...]
    version: str

    def core_flags(self, core: Core) -> tuple[str, ...]:
        if self.kind == "clang":
            return ("-target", core.zig_target, f"-mcpu={core.zig_cpu}", "-finline-hint-functions")
        return (*core.gcc_flags, "-fno-inline-functions", "-fno-inline-small-functions",
                "-fno-inline-functions-called-once", "-nostartfiles", "-specs=nano.specs", "-specs=nosys.specs")

    def __str__(self) -> str:
        return f"{' '.join(self.command)} ({self.version})" if self.version else " ".join(self.command)


def _version(command) -> str:
    try:
        out = children.run([*command, "--version"], timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def find_cross_cc(cc: Optional[str] = None) -> CrossCompiler:
    """The cross compiler: ``cc`` (``"clang"``/``"zig"`` or ``"gcc"``), else ``$HWPRUNE_MCU_CC``,
    else zig's clang. ToolchainError saying what is missing and how to get it."""
    choice = (cc or os.environ.get(CC_ENV, "") or "clang").strip().lower()
    if choice in ("gcc", "arm-none-eabi-gcc"):
        program = shutil.which("arm-none-eabi-gcc")
        if program is None:
            raise ToolchainError("arm-none-eabi-gcc is not on the PATH; install it (Debian: apt-get install "
                                 "gcc-arm-none-eabi libnewlib-arm-none-eabi) or use --cc clang (the ziglang package)")
        return CrossCompiler("gcc", (program,), _version((program,)))
    if choice not in ("clang", "zig"):
        raise ToolchainError(f"unknown cross compiler {choice!r} (from --cc or ${CC_ENV}); use clang or gcc")
    try:
        import ziglang  # noqa: F401
    except ImportError:
        raise ToolchainError("the Cortex-M cross compiler is missing: pip install ziglang "
                             "(or install arm-none-eabi-gcc and pass --cc gcc)") from None
    command = (sys.executable, "-m", "ziglang", "cc")
    return CrossCompiler("clang", command, _zig_version())


_ZIG_VERSION: list[str] = []


def _zig_version() -> str:
    if not _ZIG_VERSION:
        try:
            out = children.run([sys.executable, "-m", "ziglang", "version"], timeout=60)
            _ZIG_VERSION.append(f"zig {out.stdout.strip()}" if out.returncode == 0 else "zig")
        except (OSError, subprocess.TimeoutExpired):
            _ZIG_VERSION.append("zig")
    return _ZIG_VERSION[0]


@dataclass(frozen=True)
class Function:
    name: str
    start: int  # without the Thumb bit
    size: int


@dataclass(frozen=True)
class Firmware:
    """A linked firmware image and what the emulator needs to know about it."""

    elf: Path
    core: Core
    compiler: str
    flags: tuple[str, ...]
    traced: bool
    trace_words: int
    sections: dict  # text, rodata, data, bss (the model and start-up; no harness buffers)
    io_bytes: int
    symbols: dict  # name -> address (object symbols as they are; functions without the Thumb bit)
    functions: tuple[Function, ...]
    ram_start: int
    ram_end: int  # the initial stack pointer

    @property
    def flash_bytes(self) -> int:
        return self.sections["text"] + self.sections["rodata"] + self.sections["data"]

    @property
    def static_ram_bytes(self) -> int:
        return self.sections["data"] + self.sections["bss"]


_CACHE: list[Path] = []


def _cache_dir() -> Path:
    if not _CACHE:
        _CACHE.append(process_dir("mcu"))  # named with the pid: removed at exit, or by the next run after a kill
    return _CACHE[0]


def _trace_words(export_dir: Path) -> int:
    return sum(2 + layer["size"] for layer in read_manifest(export_dir)["layers"])


def build_firmware(export_dir, core, traced: bool = False, opt: str = "-O2",
                   compiler: Optional[CrossCompiler] = None) -> Firmware:
    """Cross-compile the C export in ``export_dir`` for ``core`` (a name or Core).

    The same sources, core, flags and compiler reuse the ELF built before in this process.
    """
    export_dir = Path(export_dir)
    mcu = templates_dir() / "mcu"
    words = _trace_words(export_dir)
    defines = (f"HWPRUNE_MCU_TRACE_WORDS={words}", *(("HWPRUNE_TRACE",) if traced else ()))
    return link_firmware([export_dir / "model.c", mcu / "harness.c"], [export_dir], core, defines, opt, compiler,
                         depends=[export_dir / n for n in C_SOURCES], traced=traced, trace_words=words)


def link_firmware(sources, include_dirs, core, defines=(), opt: str = "-O2", compiler: Optional[CrossCompiler] = None,
                  depends=(), traced: bool = False, trace_words: int = 0, fpu: bool = False,
                  strict: bool = True, frame_pointer: bool = False) -> Firmware:
    """C ``sources`` plus templates/mcu's start-up and linker script, linked for ``core``.

    The sources must define what the emulator calls (``hwprune_mcu_infer``, the
    ``hwprune_mcu_input``/``_output`` buffers in ``.hwprune_io``), as ``harness.c`` does.
    ``fpu``: enable the single-precision FPU of an M4F/M7/M33 (float code such as a
    baseline's); hwprune's own kernels are integer only. ``depends``: headers whose
    changes must rebuild. ``strict=False`` lets warnings pass (third-party code); hwprune's
    generated C must compile without any. ``frame_pointer``: keep one (r7), as a user's build
    may; the kernels' assembly must work either way.
    """
    core = get_core(core) if isinstance(core, str) else core
    if opt not in OPT_LEVELS:
        raise ToolchainError(f"optimization level {opt!r} is not one of {', '.join(OPT_LEVELS)}")
    compiler = compiler or find_cross_cc()
    mcu = templates_dir() / "mcu"
    core_flags = list(compiler.core_flags(core))
    if fpu:
        if not core.dsp:
            raise ToolchainError(f"{core.name} has no FPU")
        if compiler.kind == "clang":
            core_flags[core_flags.index(f"-mcpu={core.zig_cpu}")] = f"-mcpu={core.zig_cpu}+vfp4d16sp"
        else:
            core_flags = [f for f in core_flags if not f.startswith("-mfloat-abi")] + ["-mfloat-abi=hard",
                                                                                     "-mfpu=fpv4-sp-d16"]
    # No frame pointer: firmware carries no unwinder (no unwind tables either), arm-none-eabi-gcc
    # omits it at -O2 already, and zig's clang keeping one reserves r7, a register fewer for
    # every kernel (AD 479,067 -> 474,114 cycles, stack 196 -> 172 B)
    flags = ("-std=c99", "-Wall", "-Wextra", *(("-Werror",) if strict else ("-w",)), opt, "-g", "-ffunction-sections", "-fdata-sections",
             "-fno-unwind-tables", "-fno-asynchronous-unwind-tables",
             "-fno-omit-frame-pointer" if frame_pointer else "-fomit-frame-pointer", *core_flags)
    defines = tuple(f"-D{d}" for d in defines)
    sources = [Path(s) for s in (*sources, mcu / "startup.c")]
    digest = hashlib.sha256()
    for part in (*compiler.command, compiler.version, *flags, *defines, *map(str, include_dirs)):
        digest.update(part.encode() + b"\0")
    for path in (*sources, *map(Path, depends), mcu / "link.ld"):
        digest.update(path.read_bytes() + b"\0")
    elf = _cache_dir() / f"firmware-{digest.hexdigest()[:20]}.elf"
    if not elf.exists():
        tmp = elf.with_suffix(".tmp")
        command = [*compiler.command, *flags, *defines, *(f"-I{d}" for d in include_dirs), *map(str, sources),
                   "-T", str(mcu / "link.ld"), "-Wl,--gc-sections", "-Wl,-e,Reset_Handler", "-o", str(tmp)]
        try:
            out = children.run(command, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"cross-compiling {sources[0]} took longer than {COMPILE_TIMEOUT_S} s") from None
        if out.returncode != 0:
            output = (out.stderr + out.stdout).strip()
            failed = f"cross-compiling {sources[0]} for {core.name} failed"
            if not strict or not compiles_empty_program(compiler.command, flags):  # third-party C, or a compiler that builds nothing
                raise ToolchainError(f"{failed}:\n{output}")
            first = next((line for line in output.splitlines() if "error" in line), "")
            raise internal_error(f"the cross compiler rejected hwprune's generated C for {core.name}" + (f" ({first.strip()})" if first else ""),
                                 f"$ {shlex.join(command)}\nexit status {out.returncode}\n{output}")
        tmp.replace(elf)
    return _read_firmware(elf, core, str(compiler), (*flags, *defines), traced, trace_words)


def _read_firmware(elf: Path, core: Core, compiler: str, flags: tuple, traced: bool, words: int) -> Firmware:
    sizes = section_sizes(elf)
    io_bytes = 0
    symbols: dict[str, int] = {}
    functions = []
    try:
        with open(elf, "rb") as f:
            image = ELFFile(f)
            io = image.get_section_by_name(".hwprune_io")
            if io is not None:
                io_bytes = io["sh_size"]
                sizes["bss"] -= io_bytes  # NOBITS: section_sizes counted it as bss
            table = image.get_section_by_name(".symtab")
            if table is None:
                raise ToolchainError(f"{elf}: no symbol table (the build must keep -g and not strip)")
            for sym in table.iter_symbols():
                kind = sym["st_info"]["type"]
                if kind == "STT_FUNC":
                    start = sym["st_value"] & ~1
                    symbols[sym.name] = start
                    functions.append(Function(sym.name, start, sym["st_size"]))
                elif sym.name:
                    symbols[sym.name] = sym["st_value"]
    except ELFError as exc:
        raise ToolchainError(f"{elf}: unreadable ELF ({exc})") from None
    for name in (ENTRY, "_estack", "_sdata", "_ebss", "_shwprune_io", "_ehwprune_io", "hwprune_mcu_input",
                 "hwprune_mcu_output"):
        if name not in symbols:
            raise ToolchainError(f"{elf}: symbol {name!r} is missing; the harness templates do not match this hwprune")
    return Firmware(elf, core, compiler, tuple(flags), traced, words, sizes, io_bytes, symbols,
                    tuple(sorted(functions, key=lambda fn: fn.start)), symbols["_sdata"], symbols["_estack"])
