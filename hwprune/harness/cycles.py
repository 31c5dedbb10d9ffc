"""Cycles of Cortex-M code: each instruction decoded (capstone), put in a class, priced
from a per-core table taken from the Technical Reference Manuals.

The tables (documented with their sources and limits in docs/mcu.md):

- Cortex-M0+: TRM (Arm DDI 0484C) section 3.3, "Cortex-M0+ instruction summary":
  data processing 1, loads and stores 2, LDM/STM/PUSH/POP 1+N, POP with PC 3+N, taken
  branch 2 (B) / 3 (BL), MULS 1 (the single-cycle multiplier option most parts carry).
- Cortex-M4: TRM (Arm 100166_0001_00) section 3.3.1, Table 3-1: data processing,
  MUL/MLA/MLS, the long multiplies and the DSP multiplies 1, LDR 2 (1 when it pipelines
  behind another load or store single, section 3.3.2), STR 1, LDM/STM and LDRD/STRD 1+N, SDIV/UDIV 2
  to 12 (priced 7), a taken branch 1+P with P (pipeline refill, 1 to 3) priced 2.
- Cortex-M33: Arm publishes no per-instruction table for it (TRM Arm 100230); it has the
  M4's three-stage pipeline and ARMv8-M Mainline with DSP, so the M4 table is used.
- Cortex-M7: its TRM (Arm DDI 0489) describes a six-stage dual-issue pipeline with a
  branch predictor but gives no per-instruction table. Priced single-issue with loads of
  one cycle (TCM or cache hit) and a taken branch of 2: an upper bound that ignores dual
  issue (real code often retires about 1.5 instructions per cycle).

Condition-failed instructions in IT blocks are priced like executed ones (the cores
issue them). Wait states of real flash are not modelled by default (the tables assume
zero); ``FlashModel`` is an option that adds them for one chip (docs/mcu.md, "The cycle
model against the board").
"""

from __future__ import annotations

from collections import OrderedDict
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
    if name in ("ldrd", "ldrexd"):  # M4 TRM Table 3-1: LDRD 1+N, N = 2 registers
        return "load_multiple", 2
    if name in ("strd", "strexd"):  # STRD 1+N
        return "store_multiple", 2
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


@dataclass(frozen=True)
class FlashModel:
    """Wait states of a chip's flash behind ST's ART accelerator (an option; off by default).

    The flash returns ``read_bytes`` per access after ``wait_states`` extra cycles. The ART
    keeps the instruction reads of the last ``icache_lines`` lines of ``line_bytes`` (LRU)
    and the data reads (literal pools, constant weights: the DCode bus) of the last
    ``dcache_lines`` lines, each read at the granularity of one flash access. Priced:

    - a data load from flash whose access is not in the data cache: ``wait_states`` cycles
      (the pipeline stalls until the DCode read returns);
    - an instruction fetch whose access is not in the instruction cache: ``wait_states``
      cycles after a branch; right after the access before it (sequential code, which the
      prefetch reads ahead) only the part of ``wait_states + 1`` that the instructions of
      that access did not cover with their own cycles.
    """

    name: str
    wait_states: int
    read_bytes: int
    line_bytes: int
    icache_lines: int
    dcache_lines: int
    source: str


FLASH_MODELS = {
    "stm32l4r5": FlashModel(
        "stm32l4r5", wait_states=5, read_bytes=8, line_bytes=32, icache_lines=32, dcache_lines=8,
        source="5 WS for 100 < HCLK <= 120 MHz in voltage range 1 (STM32CubeL4 v1.15.0 stm32l4xx_ll_utils.c, "
               "Table 1 for STM32L4Rx/L4Sx; RM0432 3.3.3); a 64-bit read (dual-bank mode, the L4R5's default "
               "DBANK=1); ART instruction cache 32 lines of 4 x 64 bits (1 KB) and data cache 8 lines of "
               "4 x 64 bits (256 B), as RM0440 3.2 and 4.3.4 describe the same ART for the STM32G4"),
}


class FlashState:
    """The ART's caches while firmware runs: ``fetch`` prices a block's instruction reads,
    ``load`` a data read; both return extra cycles."""

    def __init__(self, model: FlashModel):
        self.model = model
        self._icache: OrderedDict = OrderedDict()
        self._dcache: OrderedDict = OrderedDict()
        self._i_capacity = model.icache_lines * model.line_bytes // model.read_bytes
        self._d_capacity = model.dcache_lines * model.line_bytes // model.read_bytes
        self._last_fetch = None
        self._last_cycles = 0
        self.instruction_cycles = 0
        self.data_cycles = 0

    @staticmethod
    def _hit(cache: OrderedDict, key: int, capacity: int) -> bool:
        if key in cache:
            cache.move_to_end(key)
            return True
        cache[key] = None
        if len(cache) > capacity:
            cache.popitem(last=False)
        return False

    def fetch(self, accesses) -> int:
        """``accesses``: ``(flash access index, cycles of the instructions in it)`` of one
        block, in order."""
        ws = self.model.wait_states
        extra = 0
        for key, cycles in accesses:
            if key == self._last_fetch:  # the access the previous block ended in
                self._last_cycles += cycles
                continue
            if not self._hit(self._icache, key, self._i_capacity):
                sequential = self._last_fetch is not None and key == self._last_fetch + 1
                # the prefetch read this access while the previous one's instructions ran
                extra += min(ws, max(0, ws + 1 - self._last_cycles)) if sequential else ws
            self._last_fetch, self._last_cycles = key, cycles
        self.instruction_cycles += extra
        return extra

    def load(self, address: int, size: int) -> int:
        extra = 0
        for key in range(address // self.model.read_bytes, (address + size - 1) // self.model.read_bytes + 1):
            if not self._hit(self._dcache, key, self._d_capacity):
                extra += self.model.wait_states
        self.data_cycles += extra
        return extra


def fetch_accesses(instructions, table: CycleTable, read_bytes: int) -> tuple:
    """``(flash access index, cycles of the instructions that start in it)`` of a block."""
    out: list = []
    for ins in instructions:
        key = ins.address // read_bytes
        cost = table.base[ins.cls] + (table.per_register * ins.registers
                                      if ins.cls in ("load_multiple", "store_multiple", "pop_pc") else 0)
        if out and out[-1][0] == key:
            out[-1][1] += cost
        else:
            out.append([key, cost])
        end = (ins.address + ins.size - 1) // read_bytes
        if end != key:  # a 32-bit instruction across two accesses
            out.append([end, 0])
    return tuple((k, c) for k, c in out)


def get_flash_model(target: str) -> FlashModel:
    if target not in FLASH_MODELS:
        raise TargetError(f"no flash timing model for target {target!r}; known: {', '.join(FLASH_MODELS)}")
    return FLASH_MODELS[target]
