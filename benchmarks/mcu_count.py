"""Count the instructions an exported model executes on a Cortex-M core, in an emulator.

    python benchmarks/mcu_count.py EXPORT_DIR [--core m4] [--opt O2]

A measuring tool for the benchmarks (the harness's ``mcu`` engine is the user-facing one):
the C export is cross-built with the clang in ``ziglang`` for the core, loaded into
``unicorn`` in Cortex-M mode, and ``<name>_predict`` is called once per input vector.
Instructions are counted per translation block (the per-instruction hook would skip
instructions of an IT block whose condition fails, which the core still issues); every
output is compared with the integer reference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORES = {  # core -> (clang target, cpu, unicorn cpu model name)
    "m0plus": ("thumb-freestanding-eabi", "cortex_m0plus", "UC_CPU_ARM_CORTEX_M0"),
    "m4": ("thumb-freestanding-eabihf", "cortex_m4", "UC_CPU_ARM_CORTEX_M4"),
    "m7": ("thumb-freestanding-eabihf", "cortex_m7", "UC_CPU_ARM_CORTEX_M7"),
    "m33": ("thumb-freestanding-eabihf", "cortex_m33", "UC_CPU_ARM_CORTEX_M33"),
}
FLASH, RAM, RAM_BYTES = 0x08000000, 0x20000000, 0x100000
IO = RAM + 0xC0000  # input and output vectors, above anything the model uses
SENTINEL = 0x0FFFFFF0  # return address: the emulation stops when predict returns here
LINK_SCRIPT = f"""
MEMORY {{ FLASH (rx) : ORIGIN = {FLASH:#x}, LENGTH = 4096K
         RAM (rwx) : ORIGIN = {RAM:#x}, LENGTH = 768K }}
SECTIONS {{
  .text : {{ *(.text*) *(.rodata*) }} > FLASH
  .data : {{ *(.data*) }} > RAM AT > FLASH
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) }} > RAM
}}
"""
C_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "int64_t": 8}


@dataclass(frozen=True)
class Firmware:
    elf: Path
    entry: int
    text_bytes: int  # .text (code + const data)
    functions: tuple[tuple[str, int, int], ...]  # name, start, end


def build(c_dir: Path, core: str, opt: str, out: Path, model: str) -> Firmware:
    from elftools.elf.elffile import ELFFile

    target, cpu, _ = CORES[core]
    (out / "link.ld").write_text(LINK_SCRIPT)
    elf = out / f"model_{core}_{opt}.elf"
    command = [sys.executable, "-m", "ziglang", "cc", "-target", target, f"-mcpu={cpu}", f"-{opt}", "-g",
               "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections",
               "-T", str(out / "link.ld"), "-Wl,--gc-sections", f"-Wl,-e,{model}_predict",
               f"-I{c_dir}", str(c_dir / "model.c"), "-o", str(elf)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"cross build failed:\n{done.stderr}")
    with open(elf, "rb") as f:
        e = ELFFile(f)
        symbols = e.get_section_by_name(".symtab")
        functions = tuple(sorted(
            (s.name, s["st_value"] & ~1, (s["st_value"] & ~1) + s["st_size"])
            for s in symbols.iter_symbols() if s["st_info"]["type"] == "STT_FUNC" and s["st_size"]
        ))
        entry = next(s["st_value"] for s in symbols.iter_symbols() if s.name == f"{model}_predict")
        text = e.get_section_by_name(".text")["sh_size"]
    return Firmware(elf, entry, text, functions)


def _thumb_lengths(code: bytes) -> int:
    """Instructions in a block of Thumb code: a halfword starting 0b11101/0b11110/0b11111 opens a 32-bit one."""
    count, i = 0, 0
    while i < len(code):
        hw = code[i] | code[i + 1] << 8
        i += 4 if (hw >> 11) in (0b11101, 0b11110, 0b11111) else 2
        count += 1
    return count


@dataclass(frozen=True)
class Run:
    outputs: np.ndarray
    instructions: int  # per inference, mean over the vectors
    by_function: dict


def run(fw: Firmware, core: str, x_int: np.ndarray, in_c: str, out_c: str, out_size: int) -> Run:
    import unicorn
    from unicorn import arm_const
    from elftools.elf.elffile import ELFFile

    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, CORES[core][2]))
    uc.mem_map(FLASH, 0x400000)
    uc.mem_map(RAM, RAM_BYTES)
    uc.mem_map(SENTINEL & ~0xFFF, 0x1000)
    with open(fw.elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                uc.mem_write(seg["p_vaddr"], seg.data())
    blocks: dict[int, int] = {}
    counts: dict[int, int] = {}

    def on_block(uc_, address, size, _):
        n = blocks.get(address)
        if n is None:
            n = blocks[address] = _thumb_lengths(bytes(uc_.mem_read(address, size)))
        counts[address] = counts.get(address, 0) + n

    uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    in_dtype = np.dtype(in_c.replace("_t", ""))
    out_dtype = np.dtype(out_c.replace("_t", ""))
    outputs = []
    out_addr = IO + 0x20000
    for vector in x_int.reshape(len(x_int), -1):
        uc.mem_write(IO, vector.astype(in_dtype).tobytes())
        uc.reg_write(arm_const.UC_ARM_REG_R0, IO)
        uc.reg_write(arm_const.UC_ARM_REG_R1, out_addr)
        uc.reg_write(arm_const.UC_ARM_REG_SP, IO - 16)
        uc.reg_write(arm_const.UC_ARM_REG_LR, SENTINEL | 1)
        uc.emu_start(fw.entry, SENTINEL)
        raw = bytes(uc.mem_read(out_addr, out_size * out_dtype.itemsize))
        outputs.append(np.frombuffer(raw, dtype=out_dtype).astype(np.int64))
    total = sum(counts.values())
    by_function: dict[str, int] = {}
    for address, n in counts.items():
        name = next((f for f, lo, hi in fw.functions if lo <= address < hi), "?")
        by_function[name] = by_function.get(name, 0) + n
    vectors = max(len(x_int), 1)
    return Run(np.array(outputs), total // vectors, {k: v // vectors for k, v in by_function.items()})


def measure(c_dir: Path, core: str, opt: str, x_int: np.ndarray) -> tuple[Run, Firmware]:
    """Build ``c_dir`` for ``core`` at ``-opt``, run every vector; outputs checked by the caller."""
    import json

    manifest = json.loads((Path(c_dir) / "export.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        fw = build(Path(c_dir), core, opt, Path(tmp), manifest["model"])
        result = run(fw, core, x_int, manifest["input_c_type"], manifest["output_c_type"], manifest["output_size"])
    return result, fw


def measure_checked(c_dir: Path, core: str, opt: str, graph, x_int: np.ndarray) -> tuple[Run, Firmware]:
    """``measure``, and a RuntimeError naming the first element that differs from the reference."""
    from hwprune import reference

    result, fw = measure(c_dir, core, opt, x_int)
    want = reference.run(graph, x_int).reshape(len(x_int), -1)
    if not np.array_equal(result.outputs, want):
        v, i = (int(a) for a in np.argwhere(result.outputs != want)[0])
        raise RuntimeError(f"{c_dir} on {core} -{opt}: vector {v} output {i}: reference {want[v, i]}, "
                           f"emulated {result.outputs[v, i]}")
    return result, fw


def main(argv=None) -> int:
    from hwprune.backends.c import load_export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--core", default="m4", choices=sorted(CORES))
    parser.add_argument("--opt", default="O2", choices=["O0", "O1", "O2", "O3", "Os", "Oz"])
    args = parser.parse_args(argv)
    graph = load_export(args.export_dir)
    rng = np.random.default_rng(0)
    t = graph.input_t
    x = rng.integers(t.min_int, t.max_int + 1, size=(4, *graph.input_shape))
    result, fw = measure_checked(args.export_dir, args.core, args.opt, graph, x)
    print(f"{args.export_dir} on {args.core} -{args.opt}: {result.instructions} instructions per inference, "
          f".text {fw.text_bytes} B, bit-exact on {len(x)} vectors")
    for name, n in sorted(result.by_function.items(), key=lambda kv: -kv[1]):
        print(f"  {name:40} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
