"""Memory footprint of an export: compile model.c alone and read the object's sections.

flash = text + rodata + data (initial values of data live in flash), RAM = data + bss.
This is the host compiler's estimate (-Os, no unwind tables); the Cortex-M cross build
measures the real thing and adds the measured stack.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.common.exceptions import ELFError

from hwprune.errors import ToolchainError
from hwprune.harness.build import SIZE_FLAGS, Compiler, compile_object, find_cc


@dataclass(frozen=True)
class Footprint:
    text: int
    rodata: int
    data: int
    bss: int
    compiler: str
    flags: tuple[str, ...]

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    def summary(self) -> dict:
        return {"text": self.text, "rodata": self.rodata, "data": self.data, "bss": self.bss,
                "flash": self.flash, "ram": self.ram, "compiler": self.compiler, "flags": list(self.flags)}


def section_sizes(path: Path) -> dict[str, int]:
    """Bytes per class (text, rodata, data, bss) of the allocated sections of an ELF file.

    Sections are classed by their flags, not their names, so that -ffunction-sections
    names (.text.foo, .rodata.cst8) and other compilers' spellings count alike.
    """
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    try:
        with open(path, "rb") as f:
            for section in ELFFile(f).iter_sections():
                flags = section["sh_flags"]
                if not flags & SH_FLAGS.SHF_ALLOC or section["sh_type"] == "SHT_NOTE":
                    continue
                if flags & SH_FLAGS.SHF_EXECINSTR:
                    sizes["text"] += section["sh_size"]
                elif section["sh_type"] == "SHT_NOBITS":
                    sizes["bss"] += section["sh_size"]
                elif flags & SH_FLAGS.SHF_WRITE:
                    sizes["data"] += section["sh_size"]
                else:
                    sizes["rodata"] += section["sh_size"]
    except ELFError as exc:
        raise ToolchainError(f"{path}: not an ELF file the size reader understands ({exc})") from None
    return sizes


# The model as predict needs it: the optional float helpers (quantize_input,
# dequantize_output) are left out, so sizes compare across versions and with other tools.
SIZE_DEFINES = ("HWPRUNE_NO_FLOAT",)


def measure_export(export_dir, flags: Sequence[str] = SIZE_FLAGS, compiler: Compiler | None = None) -> Footprint:
    """Flash and RAM of an export's model.c compiled on the host (no driver, no trace)."""
    compiler = compiler or find_cc()
    export_dir = Path(export_dir)
    with tempfile.TemporaryDirectory(prefix="hwprune-size-") as tmp:
        obj = compile_object(export_dir / "model.c", Path(tmp) / "model.o", [export_dir], SIZE_DEFINES, flags, compiler)
        sizes = section_sizes(obj)
    return Footprint(**sizes, compiler=str(compiler), flags=(*flags, *(f"-D{d}" for d in SIZE_DEFINES)))
