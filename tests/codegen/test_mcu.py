"""The Cortex-M path: cross build, the unicorn engine bit for bit, counts, cycles, sizes.

Each firmware is built once per module (the builds are cached by their inputs); few
vectors per run keep the emulation short.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwprune import reference
from hwprune.backends.c import export_c, read_manifest
from hwprune.errors import TargetError, ToolchainError
from hwprune.harness import verify
from hwprune.harness.cross import CORES, build_firmware, find_cross_cc
from hwprune.harness.cycles import (CYCLE_TABLES, FlashState, Instruction, block_cycles, classify, get_cycle_table,
                                    get_flash_model, thumb_length)
from hwprune.harness.emulator import emulate
from hwprune.harness.mcu import McuEngine, c_dir_of, measure_mcu
from hwprune.targets import MCU_CORES, get_target

from codegen_graphs import calibrated_mlp, quantized_inputs, random_inputs, random_typed_graph, wide_graph
from hwprune.ir import AvgPool2D, Conv2D, Dense, Flatten, Graph, MaxPool2D, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

try:
    find_cross_cc()
    import unicorn  # noqa: F401
    import capstone  # noqa: F401
except (ToolchainError, ImportError) as exc:  # pragma: no cover - the default install has them
    pytest.skip(f"no Cortex-M toolchain: {exc}", allow_module_level=True)

# One target per core the issue names.
TARGET_OF_CORE = {"cortex-m0plus": "mspm0g3507", "cortex-m4": "stm32l4r5", "cortex-m7": "pic32czca90",
                  "cortex-m33": "nrf54l15"}


def small_cnn(rng) -> tuple[Graph, np.ndarray]:
    """Conv (padded), ReLU, max pooling, depthwise conv (strided), average pooling, Dense."""
    layers = (
        Conv2D("c0", rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4), stride=(1, 1), padding=((1, 1), (1, 1))),
        ReLU("r0"),
        MaxPool2D("p0", pool_size=(2, 2)),
        Conv2D("dw", rng.normal(size=(8, 3, 3, 1)), None, stride=(2, 1), padding=((0, 1), (2, 0)), depthwise=True),
        AvgPool2D("a0", pool_size=(2, 2), stride=(1, 1), padding=((1, 0), (0, 1)), count_pad=True),
        Flatten("f"),
        Dense("fc", rng.normal(size=(3, 48)), rng.normal(size=3)),
    )
    x = rng.normal(size=(20, 8, 6, 2))
    return calibrate(Graph.chain("cnn", (8, 6, 2), layers), x, QuantConfig(8, 8)), x


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A calibrated MLP in both formats and a graph whose values need int64 in C."""
    root = tmp_path_factory.mktemp("mcu")
    rng = np.random.default_rng(5)
    graph, x = calibrated_mlp("tiny", [12, 24, 10, 4], rng, sparsity=0.7, softmax=True)
    out = {}
    for fmt in ("dense", "csr"):
        export_c(graph, root / fmt, fmt)
        out[fmt] = (root / fmt, graph, quantized_inputs(graph, x[:6]))
    wide = wide_graph()
    export_c(wide, root / "wide", "auto")
    out["wide"] = (root / "wide", wide, random_inputs(wide, np.random.default_rng(2), 6))
    cnn, x = small_cnn(np.random.default_rng(3))
    for fmt in ("dense", "csr"):
        export_c(cnn, root / f"cnn_{fmt}", fmt)
        out[f"cnn_{fmt}"] = (root / f"cnn_{fmt}", cnn, reference.quantize_input(cnn, x[:3]))
    return out


def test_cores_match_the_target_schema():
    assert set(CORES) == set(MCU_CORES) == set(CYCLE_TABLES)
    for core, name in TARGET_OF_CORE.items():
        assert get_target(name).cpu == core


CASES = [(case, core) for case in ("dense", "csr", "wide") for core in sorted(TARGET_OF_CORE)]
CASES += [(case, core) for case in ("cnn_dense", "cnn_csr") for core in ("cortex-m0plus", "cortex-m4", "cortex-m7")]


@pytest.mark.parametrize("cc", ["clang", "gcc"])
def test_every_core_with_the_dsp_extension_is_built_with_it(tmp_path, cc):
    """The flags each compiler gets for a core define __ARM_FEATURE_DSP exactly where the core
    has the extension, so its SIMD kernels are the ones measured (LLVM's cortex-m33 alone
    would leave it out, and the M33 would run the scalar kernels)."""
    from hwprune import children

    try:
        compiler = find_cross_cc(cc)
    except ToolchainError as exc:
        pytest.skip(str(exc))
    probe = tmp_path / "probe.c"
    probe.write_text("#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP\nint dsp = 1;\n#else\nint dsp = 0;\n"
                     "#endif\n")
    for core in CORES.values():
        done = children.run([*compiler.command, *compiler.core_flags(core), "-E", "-P", str(probe)], timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"int dsp = {int(core.dsp)};" in done.stdout, (core.name, done.stdout)


@pytest.mark.parametrize("case, core", CASES)
def test_every_core_is_bit_exact_layer_by_layer(exports, core, case):
    path, graph, x = exports[case]
    engine = McuEngine(target=TARGET_OF_CORE[core])
    result = verify(path, x, [engine])
    comparison = result.comparison("mcu")
    assert comparison.bit_exact, comparison.report()
    assert comparison.layers == tuple(layer.name for layer in graph.layers)  # traced, every layer
    m = engine.last_measurement
    assert m.core == core and m.vectors == len(x)
    # The per-layer figures and the glue add up to the total.
    assert m.instructions == pytest.approx(sum(layer.instructions for layer in m.layers) + m.other_instructions)
    assert m.cycles == pytest.approx(sum(layer.cycles for layer in m.layers) + m.other_cycles)
    # Layers with their own kernel run instructions; a ReLU fused into its Dense runs none.
    has_code = [layer["code"] for layer in read_manifest(c_dir_of(path))["layers"]]
    computing = [layer for layer, code in zip(m.layers, has_code) if code]
    assert computing and all(layer.instructions > 0 for layer in computing)
    assert all(layer.instructions == 0 for layer, code in zip(m.layers, has_code) if not code)
    assert m.cycles >= m.instructions  # every class costs at least one cycle


def test_a_mismatch_is_reported_not_hidden(exports):
    path, graph, x = exports["csr"]
    run = McuEngine(target="stm32l4r5").run(path, x)
    expected = reference.run(graph, x)
    assert np.array_equal(run.outputs, expected)
    broken = [(name, v.copy()) for name, v in run.trace]
    broken[0][1][0, 0] += 1
    from hwprune.harness import compare

    c = compare(reference.run(graph, x, trace=True), broken, "mcu")
    assert not c.bit_exact and c.first_layer == graph.layers[0].name


def test_block_counts_equal_the_per_instruction_hook_on_armv6m(exports):
    """ARMv6-M has no IT blocks, so the per-instruction hook sees every instruction: the
    translation-block counts must equal it exactly."""
    path, graph, x = exports["csr"]
    from hwprune.backends.c import read_manifest

    manifest = read_manifest(path)
    fw = build_firmware(path, "cortex-m0plus")
    names = [f"hwprune_{manifest['model']}_{layer['index']}_{layer['name']}" for layer in manifest["layers"]]
    run = emulate(fw, x.reshape(len(x), -1), manifest["input_c_type"], manifest["output_c_type"],
                  manifest["output_size"], names, get_cycle_table("cortex-m0plus"), per_instruction=True)
    assert np.array_equal(run.instructions.sum(axis=1), run.hooked_instructions)
    assert np.array_equal(run.outputs, reference.run(graph, x).reshape(len(x), -1))


def test_sizes_come_from_the_elf_and_the_stack_is_measured(exports):
    path, _, x = exports["dense"]
    m = measure_mcu(path, "stm32l4r5", x)
    fw = build_firmware(path, "cortex-m4")
    assert m.flash_bytes == fw.sections["text"] + fw.sections["rodata"] + fw.sections["data"]
    assert m.static_ram_bytes == fw.sections["data"] + fw.sections["bss"] >= m.arena_bytes > 0
    assert 0 < m.stack_bytes < 1024 and m.ram_bytes == m.static_ram_bytes + m.stack_bytes
    assert m.io_bytes > 0  # the harness buffers, counted apart
    t = get_target("stm32l4r5")
    assert m.latency_us == pytest.approx(m.cycles / t.clock_mhz)
    assert m.energy_uj == pytest.approx(m.cycles * t.energy_nj_per_cycle / 1000)


def test_dense_layer_work_scales_with_its_size(tmp_path):
    """Twice the inputs of a dense layer: about twice its instructions (a count, not a stub)."""
    counts = []
    for n_in in (32, 64):
        rng = np.random.default_rng(0)
        graph, x = calibrated_mlp(f"scale{n_in}", [n_in, 16], rng)
        export_c(graph, tmp_path / str(n_in), "dense")
        m = measure_mcu(tmp_path / str(n_in), "stm32l4r5", quantized_inputs(graph, x[:2]))
        counts.append(m.layers[0].instructions)
    assert 1.7 < counts[1] / counts[0] < 2.3


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       fmt=st.sampled_from(["auto", "csr8"]))
def test_random_typed_graphs_are_bit_exact_on_the_m4(tmp_path, seed, sizes, fmt):
    graph = random_typed_graph(f"hyp{seed}", sizes, seed)
    path = tmp_path / f"g{seed}_{'_'.join(map(str, sizes))}_{fmt}"
    export_c(graph, path, fmt)
    x = random_inputs(graph, np.random.default_rng(seed), 4)
    result = verify(path, x, [McuEngine(target="stm32l4r5")])
    assert result.comparison("mcu").bit_exact, result.report()


def test_thumb_lengths_and_classes():
    assert thumb_length(0xBF00) == 2  # nop
    assert thumb_length(0xF8D0) == 4  # ldr.w
    assert thumb_length(0xE92D) == 4  # push.w
    assert classify("pop", "{r4, r5, r7, pc}") == ("pop_pc", 4)
    assert classify("push", "{r4-r7, lr}") == ("store_multiple", 5)
    assert classify("b", "#6") == ("branch", 0)
    assert classify("ldr", "pc, [sp], #4") == ("branch", 0)
    assert classify("smlad", "r0, r1, r2, r3") == ("mul", 0)
    assert classify("ldrsb", "r1, [r0, #1]") == ("load", 0)
    assert classify("ldrd", "r2, r3, [r0], #8") == ("load_multiple", 2)  # 1+N, not a single load
    assert classify("strd", "r2, r3, [r1, #8]") == ("store_multiple", 2)
    assert classify("adds", "r0, #1") == ("alu", 0)


def test_cycle_tables_follow_the_manuals():
    m4, m0 = get_cycle_table("cortex-m4"), get_cycle_table("cortex-m0plus")
    loads = [Instruction(0, 2, "load", 0), Instruction(2, 2, "load", 0), Instruction(4, 2, "alu", 0)]
    # M4: LDR 2, a load behind a load pipelines to 1, ALU 1. M0+: loads 2 each.
    assert block_cycles(loads, m4) == 2 + 1 + 1
    assert block_cycles(loads, m0) == 2 + 2 + 1
    pop = [Instruction(0, 2, "pop_pc", 4)]
    assert block_cycles(pop, m0) + m0.taken_branch == 3 + 4  # POP {..., pc}: 3 + N on the M0+
    assert block_cycles(pop, m4) + m4.taken_branch == 1 + 4 + 2  # 1 + N + P with P = 2 on the M4
    with pytest.raises(TargetError):
        get_cycle_table("cortex-m85")


def test_flash_model_prices_the_art_caches():
    """The STM32L4R5's flash option: 5 wait states per 64-bit read that misses the ART's
    caches (8 lines of 32 B for data, 32 for instructions); sequential code pays only what
    the previous read's instructions did not cover."""
    model = get_flash_model("stm32l4r5")
    assert (model.wait_states, model.read_bytes, model.line_bytes, model.dcache_lines, model.icache_lines) == \
        (5, 8, 32, 8, 32)
    art = FlashState(model)
    streamed = sum(art.load(0x08010000 + a, 4) for a in range(0, 1024, 4))
    assert streamed == 5 * 1024 // 8  # one read per 8 bytes, the second word of each is in the buffer
    assert sum(art.load(0x08010000 + a, 4) for a in range(768, 1024, 4)) == 0  # the last 256 B: cached
    assert art.load(0x08010000, 4) == 5  # the first bytes were evicted
    assert art.load(0x08020006, 4) == 10  # a word across two reads
    loop = ((0x08000000 // 8, 3), (0x08000000 // 8 + 1, 4))
    assert art.fetch(loop) == 5 + (5 + 1 - 3)  # a branch in: all 5; the next read: prefetched behind 3 cycles
    assert art.fetch(loop) == 0  # the loop again: in the instruction cache
    assert art.fetch(((0x08000000 // 8 + 2, 9),)) == 5 + 1 - 4  # falls through behind the 4 cycles of the last read
    assert art.instruction_cycles == 5 + 3 + 2 and art.data_cycles == 5 * 128 + 5 + 10
    with pytest.raises(TargetError, match="no flash timing model"):
        get_flash_model("nrf52840")


def test_flash_wait_states_are_an_option_that_adds_exactly_its_stalls(exports):
    """With the flash model the outputs are the same and the cycles grow by exactly the
    stalls it reports; the dense weights, read once per inference from flash, cost at least
    5 cycles per 8 bytes."""
    path, graph, x = exports["dense"]
    manifest = read_manifest(path)
    fw = build_firmware(path, "cortex-m4")
    args = (fw, x.reshape(len(x), -1), manifest["input_c_type"], manifest["output_c_type"], manifest["output_size"],
            [], get_cycle_table("cortex-m4"))
    plain, timed = emulate(*args), emulate(*args, flash=get_flash_model("stm32l4r5"))
    assert plain.flash_stalls is None and np.array_equal(plain.outputs, timed.outputs)
    assert np.array_equal(timed.cycles.sum(axis=1) - plain.cycles.sum(axis=1), timed.flash_stalls.sum(axis=1))
    weight_bytes = sum(layer.weight.size for layer in graph.weighted_layers())  # int8 weights, dense
    assert (timed.flash_stalls[:, 1] >= 5 * weight_bytes // 8).all(), (timed.flash_stalls, weight_bytes)
    assert (timed.flash_stalls[:, 0] > 0).all()


def test_the_jet_tagger_at_95_percent_exports_for_the_m4(tmp_path):
    """hls4ml's three_layer_model.pt (tests/data, a trusted legacy pickle) pruned to 95 %:
    the report carries the firmware's flash, RAM, stack, cycles, latency and energy."""
    import json
    import warnings
    from pathlib import Path

    import torch

    from hwprune.frontends.torch import from_torch
    from hwprune.pipeline import ExportOptions, export_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.load(Path(__file__).parents[1] / "data" / "three_layer_model.pt", map_location="cpu",
                            weights_only=False)
    graph = from_torch(module.eval(), name="jet")
    x = np.random.default_rng(0).normal(size=(8, 16))
    out = export_model(graph, tmp_path / "jet", x, ExportOptions(sparsity=0.95, target="stm32l4r5"))
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] and report["engines"]["mcu"]["bit_exact"]
    assert report["mcu"]["core"] == "cortex-m4"
    for key in ("flash_bytes", "ram_bytes", "stack_bytes", "cycles", "latency_us", "energy_uj", "arena_bytes"):
        assert report[key] > 0, key
    assert report["latency_us"] == pytest.approx(report["cycles"] / 120)
    assert report["flash_bytes"] < 8 * 1024  # 95 % pruned: a few hundred weights


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("case", ["cnn_dense", "cnn_csr", "wide"])
def test_conv_and_int64_graphs_are_bit_exact_built_with_arm_none_eabi_gcc(exports, case):
    path, graph, x = exports[case]
    engine = McuEngine(target="stm32l4r5", cc="gcc")
    comparison = verify(path, x, [engine]).comparison("mcu")
    assert comparison.bit_exact, comparison.report()
    assert comparison.layers == tuple(layer.name for layer in graph.layers)
