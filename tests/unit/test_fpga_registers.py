"""The flip-flops a pipelined adder graph keeps (fpga/stages.register_bits) and the
DA estimate on the parts nextpnr places, which pipelines each layer as --backend rtl does."""

import numpy as np
import pytest

pytest.importorskip("da4ml", reason="the DA estimate needs da4ml (the fpga extra)")

from da4ml.cmvm.types import _minimal_kif  # noqa: E402
from da4ml.trace import FixedVariableArrayInput, comb_trace  # noqa: E402
from da4ml.trace.ops import quantize  # noqa: E402

from hwprune.backends.rtl import RtlOptions  # noqa: E402
from hwprune.fpga import stages  # noqa: E402
from hwprune.fpga import Options, da, estimate  # noqa: E402
from hwprune.ir.graph import Graph  # noqa: E402
from hwprune.ir.layers import Dense  # noqa: E402
from hwprune.ir.fixed import Fixed  # noqa: E402


def _declared(pipe) -> list[int]:
    """The register widths da4ml writes (rtl/src/NAME.v): every value at its full width."""
    first = sum(int(sum(_minimal_kif(q))) for q in pipe.solutions[0].inp_qint)
    return [first] + [sum(int(sum(_minimal_kif(q))) for q in s.out_qint) for s in pipe.solutions]


def _one_stage(outputs_of):
    inp = FixedVariableArrayInput((2,))
    x = quantize(inp, 1, 7, 0)  # two signed 8-bit integers
    logic = comb_trace(inp, outputs_of(x))
    return stages.pipeline(logic, 100.0)  # one stage: input register, output register


def test_a_value_and_a_slice_of_it_share_their_flip_flops():
    # s = x0 + x1 (9 bits) and s >> 3 (its top 6 bits): the slice is wiring of s's own
    # bits, so the output register holds 9 distinct signals, not 15.
    def outputs(x):
        s = x[0] + x[1]
        return [s, quantize(s, 1, 8, -3)]

    pipe = _one_stage(outputs)
    assert len(pipe.solutions) == 1
    assert _declared(pipe) == [16, 15]
    assert stages.register_bits(pipe) == [16, 9]


def test_bits_no_output_reads_have_no_flip_flop():
    # A register of x1 truncated by 4 bits needs only x1's top 4 input flip-flops; the top
    # bits of x0 + x1 need every input bit below them (the carry).
    pipe = _one_stage(lambda x: [quantize(x[1], 1, 7, -4)])
    assert _declared(pipe) == [8, 4]  # da4ml drops the unread x0 from the port
    assert stages.register_bits(pipe) == [4, 4]  # x1's low 4 bits are never read
    pipe = _one_stage(lambda x: [quantize(x[0] + x[1], 1, 8, -4)])
    assert stages.register_bits(pipe) == [16, 5]  # the carry needs every input bit


def test_forwarded_duplicates_stay_merged_over_stages():
    # A deep chain cut every carry: x0 and a slice of it are forwarded stage after stage
    # beside the running sum; each register holds x0's bits once.
    inp = FixedVariableArrayInput((2,))
    x = quantize(inp, 1, 7, 0)
    acc = x[1]
    for _ in range(4):
        acc = acc + x[1]
    logic = comb_trace(inp, [acc + x[0], quantize(x[0], 1, 7, -2)])
    pipe = stages.pipeline(logic, 1.0)
    bits, declared = stages.register_bits(pipe), _declared(pipe)
    assert len(pipe.solutions) > 3 and len(bits) == len(pipe.solutions) + 1
    assert all(b <= d for b, d in zip(bits, declared)) and sum(bits) < sum(declared)
    assert bits[0] == 16 and bits[-1] == declared[-1]  # both inputs read, every output kept


def test_forwarded_flip_flops_are_the_ones_a_flip_flop_drives():
    # A sum registered after its adder is driven by the adder (it shares the adder's slice on
    # a Gowin part); a slice of an input register is driven by the input flip-flops.
    pipe = _one_stage(lambda x: [x[0] + x[1]])
    assert stages.register_bits(pipe) == [16, 9] and stages.forwarded_bits(pipe) == [0, 0]
    pipe = _one_stage(lambda x: [quantize(x[1], 1, 7, -4)])
    assert stages.register_bits(pipe) == [4, 4] and stages.forwarded_bits(pipe) == [0, 4]
    # Cut every carry, x0 rides beside the running sum: forwarded in every register after the input
    inp = FixedVariableArrayInput((2,))
    x = quantize(inp, 1, 7, 0)
    acc = x[1]
    for _ in range(4):
        acc = acc + x[1]
    pipe = stages.pipeline(comb_trace(inp, [acc + x[0]]), 1.0)
    forwarded, bits = stages.forwarded_bits(pipe), stages.register_bits(pipe)
    assert forwarded[0] == 0 and all(8 <= f < b for f, b in zip(forwarded[1:-1], bits[1:-1]))
    assert forwarded[-1] == 0  # the last stage's adder drives the output register


def _dense(n_in=12, n_out=6, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.integers(-100, 100, size=(n_out, n_in)) * (rng.random((n_out, n_in)) < 0.5)
    t8, t3 = Fixed(8, 1), Fixed(8, 3)
    layer = Dense("fc", np.ldexp(w.astype(np.float64), -7), np.zeros(n_out), weight_t=t8, bias_t=t8,
                  accum_t=Fixed(24, 8), result_t=t3)
    return Graph.chain("m", (n_in,), (layer,), input_t=t3)


def test_da_estimate_on_nextpnr_parts_follows_the_rtl_pipeline():
    g = _dense()
    layer, in_t = g.layers[0], g.input_t
    logic = da.layer_logic(layer, (12,), in_t)
    for clock in (100.0, 250.0):
        pipe = stages.pipeline(logic, RtlOptions(clock_mhz=clock).levels_per_cycle)
        est = estimate(g, Options(strategy="da", family="ecp5", clock_mhz=clock))
        assert est.latency_cycles == len(pipe.solutions)
        assert est.ff == sum(stages.register_bits(pipe)[1:])  # the input register is the previous layer's
        # the ECP5's placed LUTs add nextpnr's feed-in and feed-out cells to every carry chain
        chains = sum(1 for op in logic.ops if op.opcode in (0, 1, 4, -2, -3, -6))
        assert chains > 0 and est.lut == da.lut_estimate(logic) + 4 * chains
        # Gowin: a carry-in ALU a chain and a pad ALU on half of them, and a pass-through LUT4
        # for every flip-flop another flip-flop drives (nextpnr-himbaechel-gowin's packer)
        forwarded = sum(stages.forwarded_bits(pipe)[1:])
        gowin = estimate(g, Options(strategy="da", family="gowin", clock_mhz=clock))
        assert gowin.lut == da.lut_estimate(logic) + round(1.5 * chains) + forwarded and gowin.ff == est.ff
        assert gowin.layers[0].products["packer_luts"] == gowin.lut - da.lut_estimate(logic)
        assert est.layers[0].products["packer_luts"] == 4 * chains
    slow, fast = (estimate(g, Options(strategy="da", family="ecp5", clock_mhz=c)) for c in (50.0, 300.0))
    assert fast.latency_cycles > slow.latency_cycles and fast.ff > slow.ff
    # Xilinx parts keep the estimate of hls4ml's DA flow (Vivado's timing, not the RTL backend's)
    xilinx = estimate(g, Options(strategy="da", family="ultrascale+", clock_mhz=300.0))
    assert xilinx.layers[0].method.startswith("da4ml adder graph")
    assert fast.layers[0].method.startswith("hwprune RTL pipeline")
