"""Cutting the traced adder graph into pipeline stages by the delay the fabric sees.

da4ml 0.5.2 times an operation by its adders only: a constant addition (a bias), a negation
and the comparisons of a saturating cast cost no time in its model, yet each is a carry
chain once synthesized, so its stages held up to four chained carry chains on an ECP5
(90 MHz at a 200 MHz target). Here every operation gets the delay of what it becomes --
a carry chain is one adder level, a LUT (a ReLU gate, a multiplexer) half a level -- and
da4ml's ``to_pipeline`` cuts the graph every ``levels_per_cycle`` levels, without its
retiming (which times the stages with its own model again).
"""

from __future__ import annotations

import math

# Levels of logic per da4ml opcode (da4ml.cmvm.types.CombLogic.__call__ documents them).
CARRY = 1.0  # an adder, a subtraction, a constant addition, a negation: a carry chain
GATE = 0.5  # a LUT between registers: ReLU's sign gate, the saturation multiplexer
OPCODE_LEVELS = {
    -1: 0.0,  # input
    0: CARRY, 1: CARRY,  # x + (y << s), x - (y << s)
    2: GATE, -2: CARRY + GATE,  # relu(x), relu(-x)
    3: 0.0, -3: CARRY,  # quantize(x) is wiring (truncation, wrap); quantize(-x) negates
    4: CARRY,  # x + constant
    5: 0.0,  # a constant
    6: GATE, -6: CARRY + GATE,  # msb(k) ? x : y, msb(k) ? x : -y
}
EPS = 1e-9
# A stage holds at least one carry chain; an operation is never split, so a graph with a
# deeper operation (a negating multiplexer, CARRY + GATE) gets stages that deep.
MIN_STAGE_LEVELS = CARRY
# One level of logic in ns, register overhead included: measured on the ECP5-85F, speed
# grade 6 (nextpnr 0.11, the jet tagger at 95 %): stages of one carry chain ran at 264.8 MHz
# (3.8 ns), of a carry chain and a LUT at 188.5 MHz (5.3 ns). At 200 MHz this cuts one carry
# chain per stage; faster parts (Xilinx UltraScale+) meet the clock with margin.
DEFAULT_ADDER_LEVEL_NS = 3.8


def levels_per_cycle(clock_mhz: float, adder_level_ns: float = DEFAULT_ADDER_LEVEL_NS) -> float:
    """Levels of logic (a carry chain is one, a LUT half) between two registers at
    ``clock_mhz``; at least one carry chain and its gate (``pipeline``)."""
    return max(MIN_STAGE_LEVELS, round(1000.0 / clock_mhz / adder_level_ns, 3))


def hardware_levels(logic, cutoff: float = 0.0):
    """``logic`` with every operation's latency replaced by the level at which its result is
    ready. With ``cutoff``, an operation that would straddle a stage boundary starts at the
    boundary instead (as da4ml's tracer does), so no stage is deeper than ``cutoff``."""
    ops = list(logic.ops)
    ready = [0.0] * len(ops)
    for i, op in enumerate(ops):
        step = OPCODE_LEVELS.get(op.opcode)
        if step is None:
            raise ValueError(f"da4ml opcode {op.opcode} has no delay model (a lookup table?)")
        if op.opcode in (0, 1, 7):
            parents = [op.id0, op.id1]
        elif op.opcode in (6, -6):
            parents = [op.id0, op.id1, op.data & 0xFFFFFFFF]
        elif op.opcode == -1 or op.opcode == 5:
            parents = []
        else:
            parents = [op.id0]
        start = max((ready[p] for p in parents if 0 <= p < i), default=0.0)
        if cutoff > 0 and step > 0 and math.floor((start + step) / cutoff - EPS) > math.floor(start / cutoff + EPS):
            start = math.ceil(start / cutoff - EPS) * cutoff
        ready[i] = start + step
        ops[i] = op._replace(latency=ready[i])
    return logic._replace(ops=ops)


def pipeline(logic, levels_per_cycle: float):
    """da4ml's Pipeline of ``logic``, a register after every ``levels_per_cycle`` levels."""
    from da4ml.trace.pipeline import to_pipeline

    cutoff = max(levels_per_cycle, MIN_STAGE_LEVELS, *(OPCODE_LEVELS.get(op.opcode, 0.0) for op in logic.ops))
    timed = hardware_levels(logic, cutoff)
    return to_pipeline(timed, cutoff, retiming=False, verbose=False)


def depth(logic) -> float:
    """The levels of logic from the inputs to the deepest output, unpipelined."""
    return max((op.latency for op in hardware_levels(logic).ops), default=0.0)


# -- the registers a pipeline keeps -------------------------------------------------------
def _prefix(top: int, width: int) -> int:
    """A mask of bits 0..top of a ``width``-bit value: what a carry chain up to ``top`` reads."""
    top = min(top, width - 1)
    return (1 << (top + 1)) - 1 if top >= 0 else 0


def _slice(mask: int, offset: int, width: int) -> int:
    """The operand bits a wiring op reads for the result bits in ``mask``: result bit j is
    operand bit ``j + offset``; past the operand's top it is the operand's sign bit."""
    out = 0
    for j in range(mask.bit_length()):
        if mask >> j & 1:
            k = j + offset
            if 0 <= k < width:
                out |= 1 << k
            elif k >= width and width:
                out |= 1 << (width - 1)
    return out


def _pads(shift: int) -> tuple[int, int]:
    """da4ml's shift_adder/mux: the zero bits right of each operand in the aligned sum."""
    return (-shift if shift < 0 else 0), (shift if shift > 0 else 0)


def _live_inputs(sol, out_masks: list[int]) -> list[int]:
    """The bits of a stage's inputs that its live outputs read (da4ml's Verilog, op by op:
    ``codegen/rtl/verilog/comb.py``). A carry chain reads every operand bit up to its highest
    live result bit; a slice (a quantization, ReLU) reads the bits it wires through."""
    from da4ml.cmvm.types import _minimal_kif

    kifs = [_minimal_kif(op.qint) for op in sol.ops]
    width = [int(sum(k)) for k in kifs]
    live = [0] * len(sol.ops)
    for idx, neg, mask in zip(sol.out_idxs, sol.out_negs, out_masks):
        if idx >= 0:
            live[idx] |= _prefix(mask.bit_length() - 1, width[idx]) if neg else mask
    inputs = [0] * len(sol.inp_qint)
    for i in range(len(sol.ops) - 1, -1, -1):
        op, mask = sol.ops[i], live[i]
        if not mask:
            continue
        top = mask.bit_length() - 1
        code = op.opcode
        if code == -1:
            inputs[op.id0] |= mask
        elif code in (0, 1):
            shift = op.data + int(kifs[op.id0][2]) - int(kifs[op.id1][2])
            pad0, pad1 = _pads(shift)
            live[op.id0] |= _prefix(top - pad0, width[op.id0])
            live[op.id1] |= _prefix(top - pad1, width[op.id1])
        elif code in (2, -2, 3, -3):
            src = op.id0
            offset = int(kifs[src][2]) - int(kifs[i][2])
            if code < 0:  # the operand is negated first: a carry chain over it
                live[src] |= _prefix(top + offset, width[src])
            else:
                live[src] |= _slice(mask, offset, width[src])
            if abs(code) == 2 and op.qint.min <= 0 and width[src]:
                live[src] |= 1 << (width[src] - 1)  # ReLU's gate: the sign bit
        elif code == 4:
            pad0, _ = _pads(int(kifs[op.id0][2]) - int(kifs[i][2]))
            live[op.id0] |= _prefix(top - pad0, width[op.id0])
        elif code in (6, -6):
            key = op.data & 0xFFFFFFFF
            shift = (op.data >> 32) & 0xFFFFFFFF
            shift = shift - (1 << 32) if shift >= 1 << 31 else shift
            pad0, pad1 = _pads(int(kifs[op.id0][2]) - int(kifs[op.id1][2]) + shift)
            if width[key]:
                live[key] |= 1 << (width[key] - 1)
            live[op.id0] |= _slice(mask, -pad0, width[op.id0])
            live[op.id1] |= (_prefix(top - pad1, width[op.id1]) if code < 0
                             else _slice(mask, -pad1, width[op.id1]))
        elif code != 5:  # a multiplier, a table: every operand bit
            for src in (op.id0, op.id1):
                if 0 <= src < len(sol.ops):
                    live[src] |= (1 << width[src]) - 1
    return inputs


def _nets(sol, inputs: list[list]) -> list[list]:
    """Each op's result bits as the signals that drive them: an input bit is the register
    bit ``inputs`` names, a slice (a quantization, a ReLU of a value that is never negative)
    the operand's own bits, a bit past the operand's top its sign bit, a constant bit None;
    anything else a signal of its own."""
    from da4ml.cmvm.types import _minimal_kif

    kifs = [_minimal_kif(op.qint) for op in sol.ops]
    nets: list[list] = []
    for i, op in enumerate(sol.ops):
        width = int(sum(kifs[i]))
        src = op.id0
        if op.opcode == 5 or width == 0:
            nets.append([None] * width)
        elif op.opcode == -1:
            nets.append([inputs[op.id0][j] if j < len(inputs[op.id0]) else None for j in range(width)])
        elif op.opcode == 3 or (op.opcode == 2 and sol.ops[src].qint.min >= 0):
            offset = int(kifs[src][2]) - int(kifs[i][2])
            operand = nets[src]
            nets.append([operand[min(j + offset, len(operand) - 1)] if 0 <= j + offset and operand else None
                         for j in range(width)])
        else:
            nets.append([(id(sol), i, j) for j in range(width)])
    return nets


def _registers(pipe) -> list[set]:
    """The live flip-flops of each register of ``pipe`` (``register_bits``), each named by
    the register and the signal that drives it."""
    from da4ml.cmvm.types import _minimal_kif

    # Forward: the flip-flop each register bit is (None: a constant).
    regs = [[[("x", k, j) for j in range(int(sum(_minimal_kif(q))))] for k, q in enumerate(pipe.solutions[0].inp_qint)]]
    for n, sol in enumerate(pipe.solutions):
        nets = _nets(sol, regs[-1])
        out = []
        for idx, neg, q in zip(sol.out_idxs, sol.out_negs, sol.out_qint):
            width = int(sum(_minimal_kif(q)))
            if idx < 0:
                out.append([None] * width)
            elif neg:
                out.append([("ff", n, "neg", idx, j) for j in range(width)])
            else:
                out.append([None if j >= len(nets[idx]) or nets[idx][j] is None else ("ff", n, nets[idx][j])
                            for j in range(width)])
        regs.append(out)
    # Backward: the bits some output depends on; the distinct flip-flops among them.
    masks = [(1 << len(bits)) - 1 for bits in regs[-1]]
    registers = []
    for n in range(len(pipe.solutions), -1, -1):
        live = {bits[j] for bits, mask in zip(regs[n], masks) for j in range(len(bits)) if mask >> j & 1}
        live.discard(None)
        registers.append(live)
        if n:
            masks = _live_inputs(pipe.solutions[n - 1], masks)
    return registers[::-1]


def register_bits(pipe) -> list[int]:
    """Flip-flops at each register of ``pipe`` (da4ml's Pipeline: the input register, one
    per stage boundary, the output register). da4ml declares each register at its values'
    full widths; synthesis keeps one flip-flop per distinct signal some output depends on:
    a bit no later operation reads (low bits a quantization drops, bits past a carry
    chain's last live result) drives nothing, a constant bit is no register, and register
    bits driven by the same signal (a value registered beside a slice of it, a sign
    extension, and so the copies of those forwarded through later stages) are one."""
    return [len(live) for live in _registers(pipe)]


def forwarded_bits(pipe) -> list[int]:
    """Of ``register_bits``, the flip-flops whose input is another flip-flop: a value carried
    unchanged (or only sliced) into a later stage, no logic of its own stage in front of it."""
    return [sum(1 for bit in live if len(bit) == 3 and isinstance(bit[2], tuple) and bit[2][0] in ("ff", "x"))
            for live in _registers(pipe)]
