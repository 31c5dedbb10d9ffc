"""Distributed arithmetic through da4ml: a layer's constant products become an adder graph.

``layer_logic`` traces one IR layer into a da4ml ``CombLogic`` that computes exactly what
the integer reference computes (products summed exactly, the accumulator's wrap, then the
cast to the result type with its rounding and saturation). Its ``cost`` (adder bits, with
da4ml's default ``adder_size=1``) is the DA strategy's LUT estimate; ``write_rtl`` writes
its Verilog for ``synth.py``. Tracers dispatch on the layer kind (``TRACERS``).

Checked against da4ml 0.5.2 (hls4ml 1.3.0's ``da`` extra pins ``<0.6``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from hwprune.errors import ToolchainError, UnsupportedLayerError
from hwprune import reference
from hwprune.fpga import stages
from hwprune.fpga.resources import LayerResources, dense_integers
from hwprune.ir.fixed import Fixed, Rounding

# hard_dc=2 bounds the adder depth two levels above the minimum and skips da4ml's search
# over decomposition depths: ten times faster than its default, within 3 % of its cost.
SOLVER_OPTIONS = {"method0": "wmc", "hard_dc": 2, "search_all_decompose_dc": False}


def require_da4ml():
    try:
        import da4ml  # noqa: F401
    except ImportError:
        raise ToolchainError("the DA strategy needs da4ml: pip install 'hwprune[fpga]' (da4ml>=0.5.2,<0.6)") from None


def kif(t: Fixed) -> tuple[int, int, int]:
    """da4ml's (keep_negative, integer bits without sign, fraction bits) of a type."""
    return int(t.signed), t.int_bits - int(t.signed), t.frac_bits


def traceable_types(layer) -> bool:
    """Whether da4ml can make every cast of the layer: its quantize rounds TRN or RND, not
    RND_CONV (QKeras's round half to even). Weights and biases lie on their grids already."""
    return all(t is None or t.rounding is not Rounding.RND_CONV
               for key, t in layer.types().items() if key not in ("weight_t", "bias_t"))


def _quantize(v, t: Fixed):
    from da4ml.trace.ops import quantize

    if t.rounding is Rounding.RND_CONV:
        raise UnsupportedLayerError(f"da4ml cannot round {t} (half to even); it rounds TRN or RND only")
    k, i, f = kif(t)
    return quantize(v, k, i, f, overflow_mode=t.overflow.value, round_mode=t.rounding.value)


Tracer = Callable[[object, Fixed, object], object]
TRACERS: dict[str, Tracer] = {}


def tracer(kind: str):
    def register(fn: Tracer) -> Tracer:
        TRACERS[kind] = fn
        return fn

    return register


@tracer("dense")
def _dense(layer, in_t: Fixed, x):
    w, b = dense_integers(layer)
    # Real values on the grids; float64 holds them exactly (at most 62-bit integers are
    # never reached by weights: weight_t is at most 32 bits wide in practice).
    weight = np.ldexp(w.T.astype(np.float64), -layer.weight_t.frac_bits)
    bias = np.ldexp(b.astype(np.float64), -layer.bias_t.frac_bits)
    y = x @ weight
    if np.any(bias != 0):
        y = y + bias
    # The reference's accumulator never overflows or wraps (reference.dense_sum); WRAP
    # to accum_t is then exact, and the result cast rounds and saturates as ap_fixed does.
    y = _quantize(y, layer.accum_t.with_(overflow="WRAP", rounding="TRN"))
    return _quantize(y, layer.result_t)


@tracer("relu")
def _relu(layer, in_t: Fixed, x):
    from da4ml.trace.ops import relu

    return _quantize(relu(x), layer.result_t)


def supports(layer) -> bool:
    return layer.kind in TRACERS


def check_exact_sum(layer, in_t: Fixed) -> None:
    """UnsupportedLayerError unless the layer's accumulator holds every partial sum exactly."""
    w, acc0 = reference.dense_integers(layer)  # the filter matrix and the bias on the accumulator's grid
    plan = reference.dense_sum(layer, in_t, w, acc0)
    if not (plan.fast and plan.never_overflows):
        raise UnsupportedLayerError(
            f"layer {layer.name!r}: its accumulator {layer.accum_t} rounds or overflows partial sums; "
            "distributed arithmetic sums exactly, so it would not equal the reference")


def layer_logic(layer, in_shape, in_t: Fixed):
    """The layer as a da4ml CombLogic over its flattened input."""
    require_da4ml()
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    if layer.kind not in TRACERS:
        raise UnsupportedLayerError(f"layer {layer.name!r}: no distributed-arithmetic tracer for {layer.kind!r}; "
                                    f"known kinds are {sorted(TRACERS)}")
    if layer.kind == "dense":
        check_exact_sum(layer, in_t)
    n = int(np.prod(in_shape))
    inp = FixedVariableArrayInput((n,), solver_options=dict(SOLVER_OPTIONS))
    # The inputs are already on in_t's grid and in its range: declare their width only.
    x = _quantize(inp, in_t.with_(overflow="WRAP", rounding="TRN"))
    y = TRACERS[layer.kind](layer, in_t, x)
    return comb_trace(inp, y)


# da4ml's cost counts one bit per adder bit; two operations it prices low against what
# synth_xilinx builds (measured on the benchmark layers, docs/fpga_resources.md): the
# saturation mux (a comparison's sign bit selecting the value) and the ReLU gate (one LUT
# per bit, da4ml counts half).
MUX_COST_FACTOR = 2.0
RELU_COST_FACTOR = 2.0


def lut_estimate(logic) -> int:
    total = 0.0
    for op in logic.ops:
        factor = MUX_COST_FACTOR if abs(op.opcode) == 6 else RELU_COST_FACTOR if abs(op.opcode) == 2 else 1.0
        total += factor * op.cost
    return int(round(total))


def pipeline_cycles(logic, levels_per_cycle: int) -> int:
    """Register stages when at most ``levels_per_cycle`` adder levels fit in a clock."""
    depth = max(logic.latency[1], 0.0)
    return max(1, math.ceil(depth / levels_per_cycle))


# Lattice and Gowin parts are placed with nextpnr from hwprune's own RTL (--backend rtl,
# hwprune.fpga.pnr): there the estimate pipelines each layer as that backend does.
RTL_FAMILIES = ("ecp5", "ice40", "gowin")


def rtl_pipeline(logic, clock_mhz: float) -> tuple[int, int, int]:
    """(stages, flip-flops, forwarded flip-flops) of ``logic`` cut as ``--backend rtl`` cuts
    it at ``clock_mhz`` (``fpga/stages.py``): the registers between stages and after the
    last, at the bits synthesis keeps (``stages.register_bits``), and how many of them a
    flip-flop drives (``stages.forwarded_bits``); the input register is the previous layer's
    output register."""
    pipe = stages.pipeline(logic, stages.levels_per_cycle(clock_mhz))
    return len(pipe.solutions), sum(stages.register_bits(pipe)[1:]), sum(stages.forwarded_bits(pipe)[1:])


# nextpnr-ecp5 packs every carry chain with two extra CCU2C cells (two LUT4s each): a feed-in,
# as its carry input is connected (constants are packed before carries), and a feed-out at
# the chain's end, as its carry output is (ecp5/pack.cc, split_carry_chain: make_carry_feed_in,
# make_carry_feed_out). On the jet tagger they are the 902 placed TRELLIS_COMB beyond the
# logic's 3,110 LUT4s: 225 chains after synthesis, 4 each, plus one.
ECP5_CHAIN_FEED_LUTS = 4
# da4ml opcodes that synthesize to a carry chain: x +- (y << s), x + constant, and the
# negations inside relu(-x), quantize(-x) and the negating multiplexer.
CARRY_OPCODES = (0, 1, 4, -2, -3, -6)


# nextpnr-himbaechel-gowin (himbaechel/uarch/gowin/pack.cc, pack_alus) starts every ALU chain
# with a carry-generator ALU (the GW1N has no CIN multiplexer, so even a constant carry-in
# takes a cell) and pads a chain of odd length with a dummy ALU, as ALUs sit in pairs: one
# ALU a chain plus a dummy on half of them. On the jet tagger: 2,792 ALUs after synthesis in
# 245 chains, 3,144 placed (245 carry-in cells, 107 dummies).
GOWIN_CHAIN_ALUS = 1.5
# A Gowin flip-flop shares its slice only with the LUT or ALU that drives its D input;
# nextpnr (gowin.cc, create_passthrough_luts) puts any other flip-flop behind a pass-through
# LUT4. A register bit a flip-flop drives (a value carried into a later stage) is one LUT4.


def carry_chains(logic) -> int:
    """The adder graph's carry chains: one per adder, constant addition or negation."""
    return sum(1 for op in logic.ops if op.opcode in CARRY_OPCODES)


def dense_da_estimate(layer, in_shape, in_t: Fixed, options):
    logic = layer_logic(layer, in_shape, in_t)
    lut = lut_estimate(logic)
    chains = carry_chains(logic)
    packer = ECP5_CHAIN_FEED_LUTS * chains if options.family == "ecp5" else 0  # cells nextpnr adds
    if options.family in RTL_FAMILIES:
        cycles, ff, forwarded = rtl_pipeline(logic, options.clock_mhz)
        if options.family == "gowin":
            packer = int(round(GOWIN_CHAIN_ALUS * chains)) + forwarded
        how = "hwprune RTL pipeline"
    else:
        cycles = pipeline_cycles(logic, options.adder_levels_per_cycle)
        out_bits = sum(io_widths(logic)[1])
        in_bits = sum(io_widths(logic)[0])
        # Registers: the output of every stage; inside the graph each cut holds about as many
        # live bits as the wider of the layer's inputs and outputs (a calibrated guess).
        ff = out_bits + (cycles - 1) * max(in_bits, out_bits)
        how = "da4ml adder graph"
    nonzero = int(np.count_nonzero(layer.weight))
    feeds = {"ecp5": " + carry feed-in/out", "gowin": " + carry-in/pad ALUs, pass-through LUTs"}.get(options.family, "")
    return LayerResources(layer.name, layer.kind, dsp=0, lut=lut + packer, ff=ff, latency_cycles=cycles, ii=1,
                          products={"zero": int(layer.weight.size - nonzero), "adder_graph": nonzero,
                                    "carry_chains": chains, "packer_luts": packer},
                          method=f"{how} (adder bits, saturation muxes x2{feeds})")


# -- the netlist's ports ----------------------------------------------------------------
def io_widths(logic) -> tuple[list[int], list[int]]:
    from da4ml.cmvm.types import _minimal_kif

    ins = [int(sum(_minimal_kif(q))) for q in logic.inp_qint]
    outs = [int(sum(_minimal_kif(q))) for q in logic.out_qint]
    return ins, outs


def _fracs(qints) -> list[tuple[int, bool]]:
    from da4ml.cmvm.types import _minimal_kif

    return [(int(_minimal_kif(q)[2]), bool(_minimal_kif(q)[0])) for q in qints]


def pack_inputs(logic, x_int: np.ndarray, in_t: Fixed) -> list[int]:
    """Each row of integer inputs as the bits of the module's ``model_inp`` port."""
    widths, _ = io_widths(logic)
    fracs = _fracs(logic.inp_qint)
    words = []
    for row in np.asarray(x_int).reshape(len(x_int), -1):
        word, pos = 0, 0
        for value, width, (frac, _) in zip(row, widths, fracs):
            if width:
                raw = int(value) << (frac - in_t.frac_bits) if frac >= in_t.frac_bits else int(value) >> (in_t.frac_bits - frac)
                word |= (raw & ((1 << width) - 1)) << pos
            pos += width
        words.append(word)
    return words


def unpack_outputs(logic, words: list[int], out_t: Fixed) -> np.ndarray:
    """The ``model_out`` bits of each vector as integers on ``out_t``'s grid."""
    _, widths = io_widths(logic)
    fracs = _fracs(logic.out_qint)
    rows = []
    for word in words:
        row, pos = [], 0
        for width, (frac, signed) in zip(widths, fracs):
            raw = (word >> pos) & ((1 << width) - 1) if width else 0
            if signed and width and raw >> (width - 1):
                raw -= 1 << width
            shift = out_t.frac_bits - frac
            row.append(raw << shift if shift >= 0 else raw >> -shift)
            pos += width
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def write_rtl(logic, name: str, directory: Path) -> Path:
    """Write the layer's Verilog with da4ml; returns the module's source file."""
    from da4ml.codegen import VerilogModel

    VerilogModel(logic, name, directory).write()
    return Path(directory) / "src" / f"{name}.v"
