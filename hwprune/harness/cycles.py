"""Cycles of Cortex-M code: each instruction decoded (capstone), put in a class, priced
from a per-core table taken from the Technical Reference Manuals.

The tables (documented with their sources and limits in docs/mcu.md):

- Cortex-M0+: TRM (Arm DDI 0484C) section 3.3, "Cortex-M0+ instruction summary":
  data processing 1, loads and stores 2, LDM/STM/PUSH/POP 1+N, POP with PC 3+N, taken
  branch 2 (B) / 3 (BL), MULS 1 (the single-cycle multiplier option most parts carry).
- Cortex-M4: TRM (Arm 100166_0001_00) section 3.3.1, Table 3-1: data processing,
  MUL/MLA/MLS, the long multiplies and the DSP multiplies 1, LDR 2 (1 when it pipelines
  behind another load or store single, section 3.3.2), STR 1, LDM/STM 1+N, SDIV/UDIV 2
  to 12 (priced 7), a taken branch 1+P with P (pipeline refill, 1 to 3) priced 2.
- Cortex-M33: Arm publishes no per-instruction table for it (TRM Arm 100230); it has the
  M4's three-stage pipeline and ARMv8-M Mainline with DSP, so the M4 table is used.
- Cortex-M7: its TRM (Arm DDI 0489) describes a six-stage dual-issue pipeline with a
  branch predictor but gives no per-instruction table. Priced single-issue with loads of
  one cycle (TCM or cache hit) and a taken branch of 2: an upper bound that ignores dual
  issue (real code often retires about 1.5 instructions per cycle).

Condition-failed instructions in IT blocks are priced like executed ones (the cores
issue them). Wait states of real flash are not modelled (the tables assume zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hwprune.errors import TargetError

CLASSES = ("alu", "mul", "div", "load", "store", "load_multiple", "store_multiple", "branch", "call", "pop_pc",
           "it", "fmac", "fdiv", "other")


@dataclass(frozen=True)
class CycleTable:
    core: str
    base: dict  # class -> cycles (multiple loads/stores: cycles before the per-register N)
    per_register: int  # cycles per register of LDM/STM/PUSH/POP
    taken_branch: int  # extra cycles when control leaves the straight line (pipeline refill)
    pipelined_load: int  # a load right behind another load/store single (M4/M33); else the base
    source: str


# FPU (single precision, for float baselines): Cortex-M4 TRM 7.2.3 Table 7-1: VMLA/VMLS/
# VFMA and their negations 3, VDIV/VSQRT 14, other data processing 1; VLDR 2, VSTR 2,
# VLDM/VSTM/VPUSH/VPOP 1+N.
_M4_LIKE = {"alu": 1, "mul": 1, "div": 7, "load": 2, "store": 1, "load_multiple": 1, "store_multiple": 1,
            "branch": 1, "call": 1, "pop_pc": 1, "it": 1, "fmac": 3, "fdiv": 14, "other": 1}

CYCLE_TABLES = {
    "cortex-m0plus": CycleTable(
        "cortex-m0plus",
        {"alu": 1, "mul": 1, "div": 1, "load": 2, "store": 2, "load_multiple": 1, "store_multiple": 1,
         "branch": 1, "call": 2, "pop_pc": 2, "it": 1, "fmac": 1, "fdiv": 1, "other": 1},
        per_register=1, taken_branch=1, pipelined_load=2,
        source="Cortex-M0+ TRM (Arm DDI 0484C), 3.3 instruction summary"),
    "cortex-m4": CycleTable("cortex-m4", dict(_M4_LIKE), per_register=1, taken_branch=2, pipelined_load=1,
                            source="Cortex-M4 TRM (Arm 100166_0001_00), 3.3.1 Table 3-1; P = 2"),
    "cortex-m33": CycleTable("cortex-m33", dict(_M4_LIKE), per_register=1, taken_branch=2, pipelined_load=1,
                             source="Cortex-M4 TRM table (Arm 100166); the M33 TRM (Arm 100230) has none"),
    "cortex-m7": CycleTable(
        "cortex-m7",
        {**_M4_LIKE, "load": 1, "store": 1},
        per_register=1, taken_branch=1, pipelined_load=1,
        source="single-issue approximation of the Cortex-M7 TRM (Arm DDI 0489) pipeline; an upper bound"),
}

_BRANCHES = {"b", "bx", "cbz", "cbnz", "tbb", "tbh"}
_CALLS = {"bl", "blx"}
_DIVIDES = {"sdiv", "udiv"}
_MULTIPLY_PREFIXES = ("mul", "mla", "mls", "smul", "umul", "smla", "umla", "smls", "smmul", "smmla", "smmls",
                      "smuad", "smusd", "smlad", "smlsd", "umaal", "smlal", "umlal")
_LOAD_MULTIPLE = {"ldm", "ldmia", "ldmdb", "ldmfd", "pop", "vldmia", "vldmdb", "vldm", "vpop"}
_STORE_MULTIPLE = {"stm", "stmia", "stmdb", "stmea", "push", "vstmia", "vstmdb", "vstm", "vpush"}
_FLOAT_MACS = ("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms")


def _registers(op_str: str) -> tuple[int, bool]:
    """How many registers a {list} names, and whether pc is one of them (r4-r7, s16-s31 ranges too)."""
    start, end = op_str.find("{"), op_str.find("}")
    if start < 0 or end < 0:
        return 0, False
    count = 0
    names = [r.strip() for r in op_str[start + 1:end].split(",") if r.strip()]
    for name in names:
        if "-" in name:
            lo, hi = (int(part.strip().lstrip("rsd")) for part in name.split("-"))
            count += hi - lo + 1
        else:
            count += 1
    return count, "pc" in names


def classify(name: str, op_str: str) -> tuple[str, int]:
    """(class, registers transferred) of one instruction; ``name`` is capstone's
    canonical mnemonic (no condition, no .w), ``op_str`` its operands."""
    name = name.lower()
    if name in _LOAD_MULTIPLE:
        count, pc = _registers(op_str)
        return ("pop_pc" if pc else "load_multiple"), count
    if name in _STORE_MULTIPLE:
        return "store_multiple", _registers(op_str)[0]
    if name in _BRANCHES:
        return "branch", 0
    if name in _CALLS:
        return "call", 0
    if name == "it":
        return "it", 0
    if name in _DIVIDES:
        return "div", 0
    if name.startswith(_FLOAT_MACS):
        return "fmac", 0
    if name.startswith(("vdiv", "vsqrt")):
        return "fdiv", 0
    if name.startswith("vldr"):
        return "load", 0
    if name.startswith("vstr"):
        return "store", 0
    if name.startswith(_MULTIPLY_PREFIXES):
        return "mul", 0
    if name.startswith("ldr") or name.startswith("ldrex"):
        return ("branch" if op_str.split(",")[0].strip() == "pc" else "load"), 0
    if name.startswith("str"):
        return "store", 0
    if name in ("mov", "add") and op_str.split(",")[0].strip() == "pc":
        return "branch", 0
    return "alu", 0


@dataclass(frozen=True)
class Instruction:
    address: int
    size: int
    cls: str
    registers: int


@lru_cache(maxsize=None)
def _disassembler():
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    return md


def thumb_length(halfword: int) -> int:
    """Bytes of the Thumb instruction whose first halfword this is (ARMv7-M A5.1)."""
    return 4 if (halfword >> 11) in (0b11101, 0b11110, 0b11111) else 2


def decode_block(code: bytes, address: int) -> tuple[Instruction, ...]:
    """The instructions of one translation block, each classified. Lengths come from the
    Thumb encoding, so a halfword capstone cannot decode still counts as one instruction."""
    md = _disassembler()
    out = []
    offset = 0
    while offset < len(code):
        first = int.from_bytes(code[offset:offset + 2], "little")
        size = thumb_length(first)
        decoded = next(md.disasm(code[offset:offset + size], address + offset, 1), None)
        if decoded is None:
            cls, regs = "other", 0
        else:
            cls, regs = classify(decoded.insn_name() or decoded.mnemonic, decoded.op_str)
        out.append(Instruction(address + offset, size, cls, regs))
        offset += size
    return tuple(out)


def block_cycles(instructions, table: CycleTable) -> int:
    """Cycles of a block executed straight through (no taken-branch penalty)."""
    cycles = 0
    previous = None
    for ins in instructions:
        cost = table.base[ins.cls]
        if ins.cls in ("load_multiple", "store_multiple", "pop_pc"):
            cost += table.per_register * ins.registers
        elif ins.cls == "load" and previous in ("load", "store"):
            cost = table.pipelined_load
        cycles += cost
        previous = ins.cls
    return cycles


def get_cycle_table(core: str) -> CycleTable:
    if core not in CYCLE_TABLES:
        raise TargetError(f"no cycle table for core {core!r}; known: {', '.join(CYCLE_TABLES)}")
    return CYCLE_TABLES[core]
