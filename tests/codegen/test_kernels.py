"""Packed formats at the entropy bound, N:M kernels, the fused ReLU, the activation arena,
``--optimize``, and every format bit-exact on Cortex-M0+, M4 (DSP path) and M7 builds
run in the emulator."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from hwprune.backends.c import arena, cost, export_c
from hwprune.backends.c.formats import (
    FORMATS, FormatNotApplicable, candidates, choose_formats, decode_weights, encode_matrix,
)
from hwprune.backends.c.formats.mask import rel_entries
from hwprune.backends.c.formats.nm import nm_fits
from hwprune.backends.c.plan import plan_model
from hwprune.errors import OptionError
from hwprune.harness import verify
from hwprune.harness.mcu import McuEngine
from hwprune.ir import Dense, Graph, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

from codegen_graphs import random_inputs, random_typed_graph
from test_export_c import assert_bit_exact


def masked(rng, shape, sparsity):
    w = rng.integers(-128, 128, size=shape)
    w[w == 0] = 1
    w[rng.random(shape) < sparsity] = 0
    return w


def nm_mask(rng, shape, n, m):
    """Keep ``n`` random slots of every group of ``m`` inputs."""
    keep = np.zeros(shape, dtype=bool)
    for j in range(shape[0]):
        for g in range(0, shape[1], m):
            width = min(m, shape[1] - g)
            keep[j, g + rng.choice(width, size=min(n, width), replace=False)] = True
    return keep


# -- storage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.95])
def test_the_smallest_format_is_within_5_percent_of_the_bound_on_256x256(sparsity):
    w = masked(np.random.default_rng(int(sparsity * 100)), (256, 256), sparsity)
    stored = []
    for f in FORMATS:
        try:
            stored.append(encode_matrix("fc", w, np.zeros(256, dtype=np.int64), "int8_t", f))
        except FormatNotApplicable:
            assert f in ("nm", "unrolled", "csro")  # no N:M structure; too many to unroll at 50 %; not a conv
    best = min(stored, key=lambda s: s.weight_bytes)
    bound = best.entropy_bits / best.nonzero_weights + 8  # mask bound + 8 value bits
    assert best.bits_per_nonzero <= 1.05 * bound, (best.format, best.bits_per_nonzero, bound)
    assert best.bits_per_nonzero > bound  # nothing beats the bound: the count is honest
    for s in stored:
        assert np.array_equal(decode_weights(s), w)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (1, 8)])
@pytest.mark.parametrize("shape", [(5, 16), (3, 13), (4, 9), (1, 3)])
def test_nm_round_trips_and_chooses_the_sparsest_pattern(rng, n, m, shape):
    w = masked(rng, shape, 0.0) * nm_mask(rng, shape, n, m)
    s = encode_matrix("fc", w, np.zeros(shape[0], dtype=np.int64), "int8_t", "nm")
    assert np.array_equal(decode_weights(s), w)
    assert nm_fits(w, n, m) and (s.param["n"], s.param["m"]) in {(n, m), (1, 8), (1, 4)}
    groups = -(-shape[1] // s.param["m"])
    assert s.array("values").data.size == shape[0] * groups * s.param["n"]


def test_nm_refuses_a_mask_without_the_structure(rng):
    w = np.ones((2, 8), dtype=np.int64)
    with pytest.raises(FormatNotApplicable, match="layer 'fc'.*N:M"):
        encode_matrix("fc", w, np.zeros(2, dtype=np.int64), "int8_t", "nm")


def test_rel_inserts_fillers_for_long_gaps_and_picks_the_width():
    w = np.zeros((2, 40), dtype=np.int64)
    w[0, 0], w[0, 10], w[1, 39] = 5, -3, 7  # gaps 0, 9 and 68
    fields, values = rel_entries(w, 3)  # gaps up to 7: 9 = 7 + filler + 1; 68 = 8 fillers + 4
    assert fields.tolist() == [0, 7, 1] + [7] * 8 + [4]
    assert values.tolist() == [5, 0, -3] + [0] * 8 + [7]
    s = encode_matrix("fc", w, np.zeros(2, dtype=np.int64), "int8_t", "rel")
    assert 2 <= s.param["width"] <= 7 and np.array_equal(decode_weights(s), w)


def test_rice_parameter_grows_with_sparsity(rng):
    ks = [encode_matrix("fc", masked(rng, (64, 64), sp), np.zeros(64, dtype=np.int64), "int8_t", "rice").param["k"]
          for sp in (0.5, 0.9, 0.98)]
    assert ks[0] < ks[1] < ks[2]


def test_formats_take_any_2d_integer_matrix_such_as_a_conv_filter_bank(rng):
    from hwprune.backends.c.plan_spatial import Window

    filters = masked(rng, (6, 3, 3, 4), 0.7).reshape(6, -1)  # (out, kh * kw * in)
    window = Window(8, 8, 4, 8, 8, 6, 3, 3, 1, 1, 1, 1, in_per_group=4)  # csro's offsets need the geometry
    for fmt in FORMATS:
        if fmt == "nm":
            continue
        s = encode_matrix("conv", filters, np.zeros(6, dtype=np.int64), "int8_t", fmt, window)
        assert np.array_equal(decode_weights(s), filters)


# -- arena and fused ReLU -----------------------------------------------------------------------


def _chain_buffers(sizes):
    return [arena.Buffer(f"t{i}", n, i, i + 1) for i, n in enumerate(sizes)]


def test_arena_holds_the_largest_two_consecutive_tensors():
    placed = arena.plan(_chain_buffers([100, 30, 200, 8]))
    assert placed.nbytes == placed.live_bound == 32 + 200  # sizes aligned to 8: 104, 32, 200, 8
    assert placed.never_reuse == 104 + 32 + 200 + 8
    sizes = [104, 32, 200, 8]
    for t in range(3):  # consecutive tensors never overlap
        lo, hi = sorted([(placed.offsets[f"t{t}"], sizes[t]), (placed.offsets[f"t{t + 1}"], sizes[t + 1])])
        assert lo[0] + lo[1] <= hi[0]
    assert arena.plan([]).nbytes == 0


def test_arena_planner_checks_its_plan_and_reuses_dead_tensors():
    # a skip tensor live across two steps, and one dead early whose bytes a later one reuses
    buffers = [arena.Buffer("a", 64, 0, 3), arena.Buffer("b", 32, 1, 2), arena.Buffer("c", 32, 2, 3),
               arena.Buffer("d", 64, 4, 5)]
    placed = arena.plan(buffers)
    assert placed.nbytes == placed.live_bound == 128 and placed.never_reuse == 192
    arena.check(buffers, placed.offsets, placed.nbytes)
    with pytest.raises(AssertionError, match="live together and overlap"):
        arena.check(buffers, {"a": 0, "b": 32, "c": 64, "d": 0}, 128)


def _mlp(rng, sizes, sparsity=0.5):
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(size=(n_out, n_in)) / np.sqrt(n_in)
        w[rng.random(w.shape) < sparsity] = 0
        layers.append(Dense(f"fc{k + 1}", w, rng.normal(size=n_out) * 0.3))
        if k < len(sizes) - 2:
            layers.append(ReLU(f"relu{k + 1}"))
    graph = Graph.chain("mlp", (sizes[0],), tuple(layers))
    return calibrate(graph, rng.normal(size=(64, sizes[0])), QuantConfig(8, 8))


def test_relu_is_fused_and_the_arena_is_smaller_than_ping_pong(tmp_path, rng):
    graph = _mlp(rng, [40, 64, 16, 48, 10])
    plan = plan_model(graph, choose_formats(graph))
    dense_steps = [s for s in plan.steps if s.storage is not None]
    assert [s.fused for s in dense_steps] == [True, True, True, False]
    assert all(s.function is None for s in plan.steps if s.layer.kind == "relu")
    assert plan.arena_bytes == 64 + 16  # uint8 outputs: 64 + 16 is the largest consecutive pair
    export_c(graph, tmp_path, "auto")
    assert "#define MLP_ARENA_BYTES 80" in (tmp_path / "model.h").read_text()
    assert "relu" not in re.findall(r"static void (\w+)\(", (tmp_path / "model.c").read_text())[-1]
    assert_bit_exact(graph, random_inputs(graph, rng, 30), tmp_path / "traced", "csr")


# -- host bit-exactness of nm and of the formats on every arithmetic path ------------------------


@pytest.mark.parametrize("seed", range(4))
def test_nm_is_bit_exact_on_every_arithmetic_path(seed, tmp_path):
    graph = random_typed_graph(f"nm{seed}", [9, 13, 6, 8], seed + 100, sparsity=0.0)
    rng = np.random.default_rng(seed)
    layers = []
    for layer, (n, m) in zip(graph.layers, [(2, 4), (1, 4), (1, 8), (2, 4), (1, 4)] * 2):
        if isinstance(layer, Dense):
            w = layer.weight * nm_mask(rng, layer.weight.shape, n, m)
            layer = Dense(layer.name, w, layer.bias, layer.weight_t, layer.bias_t, layer.accum_t, layer.result_t)
        layers.append(layer)
    graph = Graph.chain(graph.name, graph.input_shape, tuple(layers), graph.input_t)
    assert_bit_exact(graph, random_inputs(graph, rng, 40), tmp_path, "nm")


# -- --optimize ---------------------------------------------------------------------------------


def test_optimize_speed_picks_fewer_instructions_within_the_flash_budget(rng):
    graph = _mlp(rng, [64, 96, 10], sparsity=0.9)
    size = choose_formats(graph, "auto", "size")
    speed = choose_formats(graph, "auto", "speed", "cortex-m4")
    assert [s.format for s in size] == ["rice", "rice"]
    assert cost.totals(speed, "cortex-m4") < cost.totals(size, "cortex-m4")
    assert sum(s.weight_bytes for s in speed) > sum(s.weight_bytes for s in size)
    budget = sum(s.weight_bytes for s in size) + 200  # room for little more than the smallest
    tight = choose_formats(graph, "auto", "speed", "cortex-m4", budget)
    assert sum(s.weight_bytes for s in tight) <= budget
    assert cost.totals(tight, "cortex-m4") <= cost.totals(size, "cortex-m4")
    fixed = choose_formats(graph, {"fc1": "dense"}, "speed", "cortex-m0plus")
    assert fixed[0].format == "dense"
    with pytest.raises(OptionError, match="--optimize"):
        choose_formats(graph, "auto", "fast")


def test_optimize_balanced_takes_the_smallest_bytes_times_cycles(rng):
    sparse = _mlp(rng, [64, 96, 10], sparsity=0.9)
    chosen = choose_formats(sparse, "auto", "balanced", "cortex-m4")
    for storage, layer in zip(chosen, sparse.weighted_layers()):
        everything = candidates(layer)
        best = min(s.weight_bytes * cost.instructions(s, "cortex-m4") for s in everything)
        assert storage.weight_bytes * cost.instructions(storage, "cortex-m4") == best
    size = choose_formats(sparse, "auto", "size")
    # Against the smallest: a little more flash, several times fewer instructions.
    assert cost.totals(chosen, "cortex-m4") < 0.5 * cost.totals(size, "cortex-m4")
    assert sum(s.weight_bytes for s in chosen) < 1.5 * sum(s.weight_bytes for s in size)
    assert [s.format for s in choose_formats(sparse)] == [s.format for s in chosen]  # the default
    dense = _mlp(rng, [64, 96, 10], sparsity=0.0)
    assert [s.format for s in choose_formats(dense, "auto", "balanced")] == ["dense", "dense"]


# -- Cortex-M builds in the emulator ------------------------------------------------------------

EMULATED_FORMATS = {"fc1": "dense", "fc2": "dense", "fc3": "csr", "fc4": "bitmask", "fc5": "rel", "fc6": "rice",
                    "fc7": "nm", "fc8": "unrolled", "fc9": "csr8"}


def _every_format_graph(rng) -> Graph:
    """Nine layers, one per format; fc1 reads signed inputs (SXTB16), fc2 unsigned ReLU
    outputs (UXTB16), with row and column counts that leave remainders of 4."""
    sizes = [14, 22, 17, 9, 12, 10, 16, 8, 11, 6]
    graph = _mlp(rng, sizes, sparsity=0.0)
    layers = []
    for layer in graph.layers:
        if isinstance(layer, Dense) and EMULATED_FORMATS[layer.name] != "dense":
            keep = nm_mask(rng, layer.weight.shape, 1, 4) if EMULATED_FORMATS[layer.name] == "nm" \
                else rng.random(layer.weight.shape) > 0.6
            layer = Dense(layer.name, layer.weight * keep, layer.bias, layer.weight_t, layer.bias_t, layer.accum_t,
                          layer.result_t)
        layers.append(layer)
    return Graph.chain("every", graph.input_shape, tuple(layers), graph.input_t)


TARGETS = {"m0plus": "mspm0g3507", "m4": "stm32l4r5", "m7": "pic32czca90", "m33": "nrf54l15"}


@pytest.mark.parametrize("core", ["m0plus", "m4", "m7", "m33"])
def test_every_format_is_bit_exact_on_cortex_m(core, tmp_path, rng):
    """The firmware the mcu engine builds (untraced, -O2) and its traced twin: every layer."""
    graph = _every_format_graph(np.random.default_rng(3))
    export_c(graph, tmp_path, EMULATED_FORMATS)
    plan = plan_model(graph, choose_formats(graph, EMULATED_FORMATS))
    assert all(s.arithmetic.fast and s.arithmetic.acc_bits == 32 for s in plan.steps if s.storage is not None)
    if core == "m4":  # the SMLAD path is compiled in
        assert "__smlad" in (tmp_path / "model.c").read_text()
    engine = McuEngine(target=TARGETS[core])
    result = verify(tmp_path, random_inputs(graph, rng, 12), [engine])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


def test_general_path_formats_are_bit_exact_on_cortex_m4_at_os(tmp_path):
    graph = random_typed_graph("general", [9, 13, 6, 8], 5, sparsity=0.4, width_range=(2, 12))
    plan = plan_model(graph, choose_formats(graph, "csr"))
    assert any(not s.arithmetic.fast for s in plan.steps if s.storage is not None)
    x = random_inputs(graph, np.random.default_rng(5), 6)
    formats = {"fc1": "rel", "fc2": "unrolled", "fc3": "bitmask"}
    export_c(graph, tmp_path, formats)
    result = verify(tmp_path, x, [McuEngine(target="stm32l4r5", opt="-Os")])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


def test_optimize_speed_uses_cycles_measured_in_the_emulator(tmp_path, rng):
    from hwprune.harness.format_speed import measure_formats
    from hwprune.targets import get_target

    graph = _mlp(rng, [24, 20, 6], sparsity=0.8)
    x = random_inputs(graph, rng, 3)
    cycles = measure_formats(graph, get_target("stm32l4r5"), x, formats=("dense", "csr", "unrolled"))
    assert set(cycles) == {(l, f) for l in ("fc1", "fc2") for f in ("dense", "csr", "unrolled")}
    assert all(c > 0 for c in cycles.values())
    chosen = choose_formats(graph, "auto", "speed", "cortex-m4", measured=cycles)
    for s in chosen:
        assert cycles[(s.name, s.format)] == min(cycles[(s.name, f)] for f in ("dense", "csr", "unrolled"))
    export_c(graph, tmp_path, "auto", "speed", get_target("stm32l4r5"), measured=cycles)
    manifest = (tmp_path / "export.json").read_text()
    assert "measured in the Cortex-M emulator" in manifest and "estimated" not in manifest


def test_export_options_take_every_format_and_both_goals():
    from hwprune.backends.c.options import COptions

    for fmt in ("auto", *FORMATS):
        assert COptions(format=fmt, optimize="speed").format == fmt
    with pytest.raises(OptionError, match="--optimize"):
        COptions(optimize="fast")
    with pytest.raises(OptionError, match="--format"):
        COptions(format="rle")


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("core", ["m0plus", "m4", "m7"])
def test_every_format_is_bit_exact_built_with_arm_none_eabi_gcc(core, tmp_path, rng):
    """``--cc gcc``: the same sources through the GNU toolchain (its own ACLE header)."""
    graph = _every_format_graph(np.random.default_rng(3))
    export_c(graph, tmp_path, EMULATED_FORMATS)
    engine = McuEngine(target=TARGETS[core], cc="gcc")
    result = verify(tmp_path, random_inputs(graph, rng, 12), [engine])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()
    assert engine.last_measurement.instructions > 0
