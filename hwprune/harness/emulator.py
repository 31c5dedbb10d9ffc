"""Run Cortex-M firmware in unicorn and count what it executes.

The firmware (``cross.build_firmware``) is loaded as the reset handler would leave it:
every PT_LOAD segment at its run address (.data already in RAM, .bss zero). For each
vector the input is written into ``hwprune_mcu_input`` and ``hwprune_mcu_infer`` is
called with LR set to a sentinel address; emulation stops when the core returns there.

Instructions are counted per translation block (UC_HOOK_BLOCK): unicorn's
per-instruction hook skips IT-block instructions whose condition fails, the block hook
does not, and the cores issue them. Blocks are decoded once (Thumb lengths from the
encoding, classes and cycles from ``cycles.py``). A block is charged to the layer whose
kernel function holds it; a block in a helper (compiler-rt, memcpy) to the layer that
called it; everything else (predict's glue, the harness) to ``other``. When control
does not fall through to the next block, the block that left pays the core's taken-branch
penalty. With a ``FlashModel`` (an option; ``cycles.py``) the flash's wait states behind
the ART caches are added: each block's instruction reads priced as it runs, each data read
of the flash's address range through a read hook.

The stack is filled with a pattern before the first vector; its high-water mark is the
lowest word that no longer holds the pattern.

SIGINT and SIGTERM while unicorn runs: Python runs a signal handler at the next bytecode,
which is usually the first one of a hook's ctypes callback, before unicorn's wrapper has
entered its ``try``; an exception raised there is printed and dropped by ctypes, and the
emulation went on. So while emulating, the handlers only record the signal and stop the
emulator; the signal is delivered again to the previous handler once unicorn returned.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
from elftools.elf.elffile import ELFFile

from hwprune.bug_log import internal_error
from hwprune.errors import ToolchainError
from hwprune.harness.cross import ENTRY, Firmware
from hwprune.harness.cycles import CycleTable, FlashModel, FlashState, block_cycles, decode_block, fetch_accesses

STACK_PATTERN = 0xA5
PAGE = 0x1000
SCS_PAGE = 0xE000E000
RAM_SIZE = 4 << 20  # link.ld's RAM region
MAX_SECONDS_PER_VECTOR = 120
C_DTYPES = {"float": "<f4", "int8_t": "<i1", "uint8_t": "<u1", "int16_t": "<i2", "uint16_t": "<u2", "int32_t": "<i4",
            "uint32_t": "<u4", "int64_t": "<i8", "uint64_t": "<u8"}


@dataclass(frozen=True, eq=False)
class Emulation:
    outputs: np.ndarray  # (vectors, output size) int64
    trace_words: tuple  # per vector: the int64 trace records of a traced build, else empty arrays
    instructions: np.ndarray  # (vectors, owners): owners = layers in order, then "other"
    cycles: np.ndarray  # same shape
    stack_bytes: int
    hooked_instructions: Optional[np.ndarray] = None  # (vectors,) from UC_HOOK_CODE, when asked for
    flash_stalls: Optional[np.ndarray] = None  # (vectors, 2): instruction-, data-side wait-state cycles (in cycles)


def _owners(fw: Firmware, function_names: Sequence[Optional[str]]):
    """Address ranges -> owner index (a layer), or -1 for glue; None: a helper."""
    by_name = {name: i for i, name in enumerate(function_names) if name}
    glue = {ENTRY, "main", "Reset_Handler", "Default_Handler"}
    ranges = []
    for fn in fw.functions:
        if fn.name in by_name:
            ranges.append((fn.start, fn.start + max(fn.size, 2), by_name[fn.name]))
        elif fn.name in glue or fn.name.endswith("_predict"):
            ranges.append((fn.start, fn.start + max(fn.size, 2), -1))
    return sorted(ranges)


def _owner_of(ranges, address: int) -> Optional[int]:
    for start, end, owner in ranges:
        if start <= address < end:
            return owner
    return None


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_stop(uc) -> Iterator:
    """Yield ``check()``: re-delivers, outside unicorn, a SIGINT or SIGTERM that arrived
    while it ran (the handler then raises, e.g. KeyboardInterrupt). On leaving, a signal
    not yet re-delivered is re-delivered after the previous handlers are back."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield lambda: None
        return
    caught: list[int] = []

    def record(signum, _frame):
        caught.append(signum)
        with contextlib.suppress(Exception):
            uc.emu_stop()

    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for number, handler in previous.items():
        if handler is not signal.SIG_IGN:  # an ignored signal stays ignored
            signal.signal(number, record)

    def deliver():
        if caught:
            signum = caught[0]
            caught.clear()
            restore()
            signal.raise_signal(signum)  # runs the previous handler now (or its default action)
            for number, handler in previous.items():  # it returned: the emulation may go on
                if handler is not signal.SIG_IGN:
                    signal.signal(number, record)

    def restore():
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    try:
        yield deliver
    finally:
        restore()
        if caught:
            signal.raise_signal(caught[0])


def emulate(fw: Firmware, x: np.ndarray, input_c_type: str, output_c_type: str, output_size: int,
            function_names: Sequence[Optional[str]], table: CycleTable, count: bool = True,
            progress: bool = False, per_instruction: bool = False, flash: Optional[FlashModel] = None) -> Emulation:
    """Run ``x`` (vectors, input size) through the firmware, one call per vector.

    ``per_instruction`` also counts with unicorn's per-instruction hook (slow): a cross-check
    of the block counts, equal wherever no IT-block condition fails (always on ARMv6-M).
    ``flash`` adds the flash's wait states (``cycles.FlashModel``)."""
    from unicorn import Uc, UC_ARCH_ARM, UC_MODE_MCLASS, UC_MODE_THUMB

    uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
    with _signals_stop(uc) as deliver:
        return _emulate(uc, deliver, fw, x, input_c_type, output_c_type, output_size, function_names, table,
                        count, progress, per_instruction, flash)


def _emulate(uc, deliver, fw: Firmware, x: np.ndarray, input_c_type: str, output_c_type: str, output_size: int,
             function_names: Sequence[Optional[str]], table: CycleTable, count: bool, progress: bool,
             per_instruction: bool, flash: Optional[FlashModel]) -> Emulation:
    from unicorn import UcError, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ
    import unicorn.arm_const as arm

    uc.ctl_set_cpu_model(getattr(arm, fw.core.unicorn_model))
    flash_end = 0
    with open(fw.elf, "rb") as f:
        segments = [(s["p_vaddr"], s.data(), s["p_memsz"]) for s in ELFFile(f).iter_segments()
                    if s["p_type"] == "PT_LOAD"]
    flash_start = min(a for a, _, _ in segments if a < fw.ram_start)
    flash_end = max(a + m for a, _, m in segments if a < fw.ram_start)
    flash_base = flash_start & ~(PAGE - 1)
    sentinel = (flash_end + PAGE) & ~(PAGE - 1)  # a mapped address no code occupies
    uc.mem_map(flash_base, sentinel + PAGE - flash_base)
    ram_base = fw.ram_start & ~(PAGE - 1)
    uc.mem_map(ram_base, RAM_SIZE)
    io_base = fw.symbols["_shwprune_io"] & ~(PAGE - 1)  # the harness's buffers (link.ld's IO region)
    if not ram_base <= io_base < ram_base + RAM_SIZE:
        uc.mem_map(io_base, (fw.symbols["_ehwprune_io"] - io_base + PAGE) & ~(PAGE - 1))
    stack_low = fw.symbols["_ebss"]
    uc.mem_write(stack_low, bytes([STACK_PATTERN]) * (fw.ram_end - stack_low))
    for address, data, memsz in segments:
        uc.mem_write(address, data + bytes(memsz - len(data)))

    in_dtype, out_dtype = np.dtype(C_DTYPES[input_c_type]), np.dtype(C_DTYPES[output_c_type])
    in_addr, out_addr = fw.symbols["hwprune_mcu_input"], fw.symbols["hwprune_mcu_output"]
    entry = fw.symbols[ENTRY]
    owners = len(function_names) + 1  # the last column is "other"
    ranges = _owners(fw, function_names)
    blocks: dict = {}
    state = {"owner": owners - 1, "prev_end": None, "prev_owner": owners - 1}
    instr_row = [0] * owners
    cycle_row = [0] * owners
    penalty = table.taken_branch
    art = FlashState(flash) if flash is not None else None  # the caches stay warm from one vector to the next

    def on_block(uc_, address, size, _user):
        info = blocks.get((address, size))
        if info is None:
            decoded = decode_block(bytes(uc_.mem_read(address, size)), address)
            owner = _owner_of(ranges, address)
            fetches = fetch_accesses(decoded, table, flash.read_bytes) if art is not None and address < flash_end else ()
            info = (len(decoded), block_cycles(decoded, table), None if owner is None else (owner if owner >= 0 else owners - 1),
                    fetches)
            blocks[(address, size)] = info
        n, c, owner, fetches = info
        if fetches:
            c += art.fetch(fetches)
        if owner is None:
            owner = state["owner"]
        else:
            state["owner"] = owner
        prev_end = state["prev_end"]
        if prev_end is not None and prev_end != address:
            cycle_row[state["prev_owner"]] += penalty
        instr_row[owner] += n
        cycle_row[owner] += c
        state["prev_end"] = address + size
        state["prev_owner"] = owner

    init = fw.symbols.get("hwprune_mcu_init")
    if init is not None:
        # unicorn does not model the System Control Space; a page of plain memory lets the
        # start-up's register writes (e.g. CPACR) land. Its FPU is usable without them.
        uc.mem_map(SCS_PAGE, PAGE)  # once, before counting starts (e.g. a float baseline enables its FPU)
        uc.reg_write(arm.UC_ARM_REG_SP, fw.ram_end)
        uc.reg_write(arm.UC_ARM_REG_LR, sentinel | 1)
        uc.emu_start(init | 1, sentinel, timeout=MAX_SECONDS_PER_VECTOR * 1_000_000)
        deliver()
    if count:
        uc.hook_add(UC_HOOK_BLOCK, on_block)
    hooked = [0]

    def on_instruction(_uc, _address, _size, _user):
        hooked[0] += 1

    if per_instruction:
        uc.hook_add(UC_HOOK_CODE, on_instruction)

    def on_read(_uc, _access, address, size, _value, _user):
        if flash_start <= address < flash_end:
            cycle_row[state["prev_owner"]] += art.load(address, size)  # prev_owner: the block running now

    if count and art is not None:
        # Every read, filtered here: a read hook limited to the flash's range made unicorn
        # apply a post-indexed load's writeback twice in CMSIS-NN's arm_convolve_s8 (KWS's
        # outputs changed). Over all memory CMSIS-NN's MLPerf Tiny outputs stay right, some
        # of hwprune's firmware still goes wrong (docs/mcu.md): callers check the outputs.
        uc.hook_add(UC_HOOK_MEM_READ, on_read)
    stalls = np.zeros((x.shape[0], 2), dtype=np.int64)
    hooked_counts = np.zeros(x.shape[0], dtype=np.int64)
    vectors = x.shape[0]
    outputs = np.zeros((vectors, output_size), dtype=np.float64 if out_dtype.kind == "f" else np.int64)
    instructions = np.zeros((vectors, owners), dtype=np.int64)
    cycles = np.zeros((vectors, owners), dtype=np.int64)
    traces = []
    trace_used = fw.symbols.get("hwprune_mcu_trace_used")
    bar = _progress(vectors, progress)
    try:
        for v in range(vectors):
            uc.mem_write(in_addr, x[v].astype(in_dtype).tobytes())
            uc.reg_write(arm.UC_ARM_REG_SP, fw.ram_end)
            uc.reg_write(arm.UC_ARM_REG_LR, sentinel | 1)
            for i in range(owners):
                instr_row[i] = cycle_row[i] = 0
            before = (art.instruction_cycles, art.data_cycles) if art is not None else (0, 0)
            state.update(owner=owners - 1, prev_end=None, prev_owner=owners - 1)
            hooked[0] = 0
            try:
                uc.emu_start(entry | 1, sentinel, timeout=MAX_SECONDS_PER_VECTOR * 1_000_000)
                deliver()  # a signal stopped it: its handler raises here, outside unicorn
            except UcError as exc:
                pc = uc.reg_read(arm.UC_ARM_REG_PC)
                raise internal_error(f"the firmware {fw.elf.name} ({fw.core.name}) crashed in the emulator at pc "
                                     f"0x{pc:08x} on vector {v}", f"{exc}\nELF: {fw.elf}\nflags: {' '.join(fw.flags)}") from None
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            if pc & ~1 != sentinel:
                raise internal_error(f"the firmware {fw.elf.name}: vector {v} did not return within "
                                     f"{MAX_SECONDS_PER_VECTOR} s", f"pc 0x{pc:08x}\nELF: {fw.elf}\nflags: {' '.join(fw.flags)}")
            status = uc.reg_read(arm.UC_ARM_REG_R0)
            if status != 0:
                raise internal_error(f"the firmware {fw.elf.name}: predict returned {status} on vector {v}",
                                     f"ELF: {fw.elf}\nflags: {' '.join(fw.flags)}")
            raw = uc.mem_read(out_addr, output_size * out_dtype.itemsize)
            outputs[v] = np.frombuffer(bytes(raw), dtype=out_dtype)
            instructions[v] = instr_row
            hooked_counts[v] = hooked[0]
            cycles[v] = cycle_row
            if art is not None:
                stalls[v] = (art.instruction_cycles - before[0], art.data_cycles - before[1])
            if fw.traced:
                used = int(np.frombuffer(bytes(uc.mem_read(trace_used, 4)), "<i4")[0])
                if used > fw.trace_words:
                    raise ToolchainError(f"{fw.elf.name}: the trace of vector {v} overflowed its buffer")
                words = np.frombuffer(bytes(uc.mem_read(fw.symbols["hwprune_mcu_trace"], used * 8)), "<i8")
                traces.append(words.astype(np.int64))
            bar.update(1)
    finally:
        bar.close()
    stack = np.frombuffer(bytes(uc.mem_read(stack_low, fw.ram_end - stack_low)), dtype=np.uint8)
    touched = np.flatnonzero(stack != STACK_PATTERN)
    stack_bytes = int(fw.ram_end - stack_low - touched[0]) if touched.size else 0
    # The pattern is word-filled: a word written with 0xA5 bytes would hide; round up to words.
    stack_bytes = (stack_bytes + 3) // 4 * 4
    return Emulation(outputs, tuple(traces), instructions, cycles, stack_bytes,
                     hooked_counts if per_instruction else None, stalls if art is not None else None)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="emulate", unit="vector", file=sys.stderr, leave=False,
                disable=None if enabled else True)
