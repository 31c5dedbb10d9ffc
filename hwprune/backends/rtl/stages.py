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
