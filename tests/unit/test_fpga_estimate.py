import math

import numpy as np
import pytest

from hwprune.errors import OptionError, ToolchainError, UnsupportedLayerError
from hwprune.fpga import Options, estimate
from hwprune.fpga.constants import csd_digits, dsp_tiles, significant_bits
from hwprune.fpga.fit import fit, fpga_target, prune_quantized, warnings
from hwprune.fpga.netlist import Netlist
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Conv1D, Dense, Flatten, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.ir.fixed import Fixed, Overflow, Rounding


def test_csd_digits_and_significant_bits():
    assert [csd_digits(v) for v in (0, 1, 2, 3, 7, 8, -7, 5, 0b1011011)] == [0, 1, 1, 2, 2, 1, 2, 2, 4]
    for v in range(-300, 300):  # CSD never needs more digits than binary
        assert csd_digits(v) <= bin(abs(v)).count("1")
    assert [significant_bits(v) for v in (0, 1, 12, -40, 255)] == [0, 1, 2, 3, 8]


def test_dsp_tiles_follow_the_multiplier_width():
    assert dsp_tiles(16, 16, 27, 18) == 1
    assert dsp_tiles(26, 18, 27, 18) == 1  # DSP48E2 27x18
    assert dsp_tiles(26, 18, 25, 18) == 2  # DSP48E1 25x18
    assert dsp_tiles(18, 26, 25, 18) == 2
    assert dsp_tiles(40, 30, 27, 18) == 4


def _typed_dense(weight, x_t=Fixed(16, 6), acc=Fixed(40, 20)):
    t = Fixed(16, 6, True, Rounding.TRN, Overflow.WRAP)
    w = np.asarray(weight, dtype=np.float64) * 2.0 ** -10
    layer = Dense("fc", w, np.zeros(w.shape[0]), weight_t=t, bias_t=t, accum_t=acc, result_t=t)
    return Graph.chain("m", (w.shape[1],), (layer,), input_t=x_t)


def test_powers_of_two_and_small_constants_use_no_dsp():
    shifts = _typed_dense([[1, 2, -4, 8], [16, -1, 2, 4]])
    est = estimate(shifts).layers[0]
    assert est.dsp == 0 and est.products["shift"] == 8
    three_digit = _typed_dense([[7, 11, 13, 3]])  # 2 or 3 CSD digits: shift-adds in LUTs
    assert estimate(three_digit).dsp == 0
    wide = _typed_dense([[0b1011011, 0b1101101, 0, 0]])  # 4 CSD digits: a DSP each
    est = estimate(wide).layers[0]
    assert est.dsp == 2 and est.products["dsp"] == 2 and est.products["zero"] == 2


def test_pruning_never_costs_more():
    rng = np.random.default_rng(0)
    g = Graph.chain("m", (24,), (Dense("fc1", rng.normal(size=(16, 24)), rng.normal(size=16)), ReLU("r"),
                           Dense("fc2", rng.normal(size=(4, 16)), np.zeros(4))))
    q = calibrate(g, rng.normal(size=(64, 24)), QuantConfig(12, 12))
    previous = None
    for s in (0.0, 0.5, 0.9):
        est = estimate(prune_quantized(q, s), Options(strategy="latency"))
        if previous is not None:
            assert est.lut < previous.lut and est.dsp <= previous.dsp
        previous = est
    zero = estimate(prune_quantized(q, 1.0))
    assert zero.dsp == 0 and zero.layers[0].products["zero"] == 16 * 24


def test_reuse_factor_shares_multipliers_and_sets_ii():
    rng = np.random.default_rng(1)
    g = Graph.chain("m", (32,), (Dense("fc", rng.normal(size=(32, 32)), np.zeros(32)),))
    q = calibrate(g, rng.normal(size=(64, 32)), QuantConfig(16, 16))
    for strategy in ("latency", "resource"):
        for reuse in (2, 8, 32):
            est = estimate(q, Options(strategy=strategy, reuse_factor=reuse))
            assert est.ii == reuse
            assert est.layers[0].products["multipliers"] == math.ceil(32 * 32 / reuse)
            assert est.dsp == math.ceil(32 * 32 / reuse)
    # Resource at a long reuse keeps the weights in block RAM; latency never does.
    assert estimate(q, Options(strategy="resource", reuse_factor=128)).bram_18k > 0
    assert estimate(q, Options(strategy="latency", reuse_factor=128)).bram_18k == 0


def test_bad_options_and_unknown_kinds():
    with pytest.raises(OptionError, match="reuse-factor"):
        Options(strategy="da", reuse_factor=4)
    with pytest.raises(OptionError, match="strategy"):
        Options(strategy="fast")
    with pytest.raises(OptionError):
        Options(reuse_factor=0)
    g = _typed_dense([[1, 2]])
    from hwprune.fpga import RULES

    rules = dict(RULES)
    try:
        del RULES["dense"]
        with pytest.raises(UnsupportedLayerError, match="no FPGA resource rule"):
            estimate(g)
    finally:
        RULES.clear()
        RULES.update(rules)


def test_conv_streams_one_position_per_interval():
    rng = np.random.default_rng(2)
    g = Graph.chain("c", (20, 3), (Conv1D("c1", rng.normal(size=(4, 3, 3)), np.zeros(4)), ReLU("r"), Flatten("f"),
                             Dense("d", rng.normal(size=(2, 72)), np.zeros(2))))
    q = calibrate(g, rng.normal(size=(32, 20, 3)), QuantConfig(8, 8))
    est = estimate(q, Options(reuse_factor=2))
    conv = est.layers[0]
    assert conv.ii == 18 * 2 and conv.latency_cycles >= 36
    assert est.ii == conv.ii


def test_fit_warns_with_the_figures():
    g = _typed_dense(np.full((64, 64), 0b1011011))
    est = estimate(g, Options(family="7series", clock_mhz=100))
    result = fit(est, fpga_target("xc7z020"))
    assert not result["fits"] and "dsp" in result["over"]
    (message,) = [w for w in warnings(result) if "DSP" in w]
    assert f"DSP {est.dsp:,} of 220" in message


def test_unknown_or_non_fpga_part_is_an_error():
    from hwprune.errors import TargetError

    with pytest.raises(TargetError, match="unknown target"):
        fpga_target("xc9nope")
    with pytest.raises(TargetError, match="not an FPGA"):
        fpga_target("stm32l4r5")
    assert fpga_target("xcvu9p").dsp == 6840 and fpga_target("xc7a35t").lut == 20800


def _carry_adder_netlist(tmp_path):
    """A 4-bit adder as synth_xilinx builds one: LUT2 XORs into a CARRY4's S, a into DI."""
    import json

    a, b, out = [2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13, 14]
    cells = {}
    for k in range(4):
        cells[f"x{k}"] = {"type": "LUT2", "parameters": {"INIT": "0110"},
                          "port_directions": {"I0": "input", "I1": "input", "O": "output"},
                          "connections": {"I0": [a[k]], "I1": [b[k]], "O": [20 + k]}}
    cells["c"] = {"type": "CARRY4", "parameters": {},
                  "port_directions": {"CI": "input", "CYINIT": "input", "DI": "input", "S": "input",
                                      "O": "output", "CO": "output"},
                  "connections": {"CI": ["0"], "CYINIT": ["0"], "DI": a, "S": [20, 21, 22, 23],
                                  "O": out[:4], "CO": [30, 31, 32, out[4]]}}
    module = {"ports": {"a": {"direction": "input", "bits": a}, "b": {"direction": "input", "bits": b},
                        "y": {"direction": "output", "bits": out}}, "cells": cells}
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"modules": {"add": module}}))
    return Netlist.load(path, "add")


def test_netlist_evaluator_adds_through_a_carry_chain(tmp_path):
    net = _carry_adder_netlist(tmp_path)
    a = [x for x in range(16) for _ in range(16)]
    b = [y for _ in range(16) for y in range(16)]
    y = net.evaluate({"a": a, "b": b})["y"]
    assert y == [x + z for x, z in zip(a, b)]
    assert net.cell_counts() == {"CARRY4": 1, "LUT2": 4}


def test_da_needs_da4ml_or_says_how(monkeypatch):
    import builtins

    from hwprune.fpga import da

    real = builtins.__import__

    def no_da4ml(name, *args, **kwargs):
        if name.startswith("da4ml"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_da4ml)
    with pytest.raises(ToolchainError, match="pip install"):
        da.require_da4ml()


def test_prune_quantized_hits_the_sparsity_on_transposed_weights():
    t = Fixed(8, 1)
    w = np.ldexp(np.arange(1, 201, dtype=np.float64).reshape(10, 20), -7).T  # not C-contiguous
    g = Graph.chain("m", (10,), (Dense("fc", w, np.zeros(20), weight_t=Fixed(16, 8), bias_t=t, accum_t=Fixed(32, 16),
                                 result_t=t),), input_t=t)
    pruned = prune_quantized(g, 0.9).layers[0].weight
    assert np.count_nonzero(pruned) == 20
    assert np.array_equal(pruned != 0, w >= np.sort(w.ravel())[180])


def _dag():
    from hwprune.ir import Add, Clip, Concatenate, GraphInput, Multiply

    rng = np.random.default_rng(3)
    layers = (Dense("a", rng.normal(size=(8, 6)), None, inputs=("input",)), Clip("clip", 0.0, 6.0, inputs=("a",)),
              Dense("b", rng.normal(size=(8, 8)), None, inputs=("clip",)), Dense("c", rng.normal(size=(8, 6)), None,
                                                                                inputs=("input",)),
              Add("add", inputs=("b", "c")), Multiply("mul", inputs=("add", "c")),
              Concatenate("cat", inputs=("mul", "clip")), Dense("out", rng.normal(size=(3, 16)), None, inputs=("cat",)))
    graph = Graph("dag", (GraphInput("input", (6,)),), layers)
    return calibrate(graph, rng.normal(size=(64, 6)), QuantConfig(8, 8))


def test_merge_layers_have_rules_and_branches_run_side_by_side():
    from hwprune.reference.merge import add_grid

    graph = _dag()
    result = estimate(graph)
    rows = {row.name: row for row in result.layers}
    _, bits = add_grid(list(graph.input_types("add")))
    assert rows["add"].lut >= 8 * bits  # an adder of the exact sum's width per element
    assert rows["mul"].dsp + rows["mul"].lut > 0 and rows["clip"].lut > 0
    # a, clip, b, add, mul, cat, out is the longest path; c runs beside a -> clip -> b
    longest = sum(rows[n].latency_cycles for n in ("a", "clip", "b", "add", "mul", "cat", "out"))
    assert result.latency_cycles == longest < sum(row.latency_cycles for row in result.layers)
    concat_types = graph.input_types("cat")
    assert rows["cat"].lut == sum(8 * graph.type_of("cat").width // 2 for t in concat_types
                                  if t != graph.type_of("cat"))


def test_a_chains_latency_is_still_the_sum_of_its_layers():
    rng = np.random.default_rng(0)
    graph = calibrate(Graph.chain("c", (6,), (Dense("a", rng.normal(size=(5, 6)), None), ReLU("r"),
                                              Dense("b", rng.normal(size=(3, 5)), None))), rng.normal(size=(30, 6)))
    result = estimate(graph)
    assert result.latency_cycles == sum(row.latency_cycles for row in result.layers)
