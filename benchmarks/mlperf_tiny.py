"""MLPerf Tiny's int8 models on one Cortex-M4: hwprune's int8 C beside CMSIS-NN, in one run.

For each model, the same random int8 inputs (seeded) run through hwprune's int8 C
(``backends.c_int8`` via ``harness.mcu_int8``) and through the same graph as CMSIS-NN
calls (``benchmarks.cmsis_nn``), both cross-built by the project's firmware build and run
in the same emulator with the same cycle table; both outputs are compared with the
integer reference (equal to TFLite Micro's, ``benchmarks.tflm_exact``). Printed per model:
cycles of each and their ratio, the best published MLPerf Tiny cycles on the same
board (STM32L4R5 at 120 MHz, latency x clock), flash, RAM (static + stack), energy at the
target's nJ/cycle, the share of the model's MACs that dead-channel removal takes out
(``prune.dead_channels``: all-zero filters, their constants folded exactly into their readers'
biases), and the share hwprune removes or skips (those plus the MACs on zero weights of the
layers its C stores sparse; CMSIS-NN runs every MAC of the original model). Both sides are
compared with the reference of the original model. A model the .tflite reader refuses is
listed with its reason.

``--profile`` also prints, per model, where hwprune's cycles go: each layer's cycles
(its own function in the C, so the emulator charges it apart), MACs, MACs on nonzero
weights, cycles per MAC and per nonzero MAC, and the kernel that ran.

    python -m benchmarks.mlperf_tiny [--vectors 2] [--keep-dead-channels] [--profile] [--flash-wait-states]
        [--models ad01_int8 kws_ref_model vww_96_int8 pretrainedResnet_quant]

``--flash-wait-states`` adds the target's flash wait states behind ST's ART caches to both
sides' cycles (``harness.cycles.FLASH_MODELS``; off by default) and prints, per model, the
wait-state cycles on instruction fetches and on data reads (the weights live in flash).

Both sides build with ``$HWPRUNE_MCU_CC`` (default zig's clang; ``gcc`` for arm-none-eabi-gcc).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.cmsis_nn import run_cmsis_nn
from hwprune import reference
from hwprune.backends.c_int8 import layer_kernels, write_int8_c
from hwprune.backends.c_int8_plan import stored_dense, wide_weights
from hwprune.errors import HwpruneError
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.cycles import get_flash_model
from hwprune.harness.mcu_int8 import run_mcu
from hwprune.prune.dead_channels import remove_dead_channels
from hwprune.targets import get_target
from hwprune.tempdirs import temp_dir

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
MODELS = {"ad01_int8": "AD", "kws_ref_model": "KWS", "vww_96_int8": "VWW", "pretrainedResnet_quant": "IC"}
# The best published MLPerf Tiny results on the STM32L4R5 (Cortex-M4F at 120 MHz), as cycles
# per inference (latency x clock).
PUBLISHED_CYCLES = {"AD": 486_000, "KWS": 5_184_000, "IC": 19_812_000, "VWW": 10_668_000}


def _mismatches(got: np.ndarray, want: np.ndarray) -> str:
    bad = np.argwhere(got != want)
    first = ", ".join(f"{tuple(int(i) for i in idx)}: {int(got[tuple(idx)])} != {int(want[tuple(idx)])}"
                      for idx in bad[:3])
    return f"{len(bad)} of {want.size} outputs differ ({first})"



def skipped_macs(graph) -> int:
    """MACs on zero weights of the layers the int8 C stores sparse (a dense-stored layer
    multiplies its zeros too)."""
    return sum(graph.layer_macs(layer) - graph.layer_macs(layer, nonzero_only=True)
               for layer in graph.weighted_layers() if not stored_dense(layer))


def profile_table(graph, run) -> str:
    """A markdown table of ``run``'s (``harness.mcu_int8.run_mcu`` of ``graph``) cycles per layer."""
    lines = ["| # | layer | kind | output | kernel | MACs | nonzero MACs | cycles | share | cycles/MAC | "
             "cycles/nonzero MAC |", "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    total = float(run.layer_cycles.sum())
    kernels = layer_kernels(graph)
    for i, layer in enumerate(graph.layers):
        macs, nonzero = graph.layer_macs(layer), graph.layer_macs(layer, nonzero_only=True)
        cycles = float(run.layer_cycles[i])
        kind = layer.kind + (" dw" if getattr(layer, "depthwise", False) else "")
        shape = "x".join(str(d) for d in graph.shape_of(layer.name))
        lines.append(f"| {i} | {layer.name[-28:]} | {kind} | {shape} | {kernels[i]} | {macs:,} | {nonzero:,} | "
                     f"{cycles:,.0f} | {cycles / total:.1%} | {cycles / macs if macs else 0:.2f} | "
                     f"{cycles / nonzero if nonzero else 0:.2f} |")
    glue, harness = run.layer_cycles[-2:]
    lines.append(f"| | predict's own code / harness | | | | | | {glue:,.0f} / {harness:,.0f} | | | |")
    lines.append(f"| | total | | | | {graph.macs:,} | {graph.nonzero_macs:,} | {total:,.0f} | 100% | "
                 f"{total / graph.macs:.2f} | {total / graph.nonzero_macs:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=2, help="random int8 inputs per model (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", default="stm32l4r5")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--keep-dead-channels", action="store_true",
                        help="hwprune's C computes every channel of the file (no dead-channel removal)")
    parser.add_argument("--profile", action="store_true", help="also print hwprune's cycles per layer")
    parser.add_argument("--flash-wait-states", action="store_true",
                        help="add the target's flash wait states behind its ART caches (harness.cycles.FLASH_MODELS)")
    args = parser.parse_args(argv)
    target = get_target(args.target)
    flash = get_flash_model(args.target) if args.flash_wait_states else None
    nj = target.energy_nj_per_cycle
    print(f"target {target.name} ({target.cpu}, {target.clock_mhz:g} MHz, {nj} nJ/cycle); "
          f"{args.vectors} vectors per model" + (f"; flash: {flash.wait_states} wait states behind the ART caches ({flash.source})"
                                                  if flash else ""))
    print("| model | bit-exact hwprune / CMSIS-NN | hwprune cycles | CMSIS-NN cycles | hwprune / CMSIS-NN | "
          "best published | hwprune / published | CMSIS-NN / published | flash B hwprune / CMSIS-NN | "
          "RAM B hwprune / CMSIS-NN | energy uJ hwprune / CMSIS-NN | MACs | MACs in dead channels removed | "
          "MACs removed or skipped by hwprune | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = False
    stalls: list[str] = []
    profiles = []
    for name in args.models:
        label = MODELS[name]
        try:
            graph = read_tflite(DATA / f"{name}.tflite", name).graph
        except HwpruneError as exc:
            print(f"| {label} | not run: {exc} |")
            continue
        x = np.random.default_rng(args.seed).integers(-128, 127, size=(args.vectors, *graph.input_shape), endpoint=True)
        start = time.perf_counter()
        expected = reference.run(graph, x)  # the model as the file holds it: both sides must equal it
        exported = graph if args.keep_dead_channels else remove_dead_channels(graph)[0]
        side = "CMSIS-NN"
        try:  # one side that cannot build or run is reported in its row; the other models still run
            with temp_dir("bench") as work:
                theirs = run_cmsis_nn(graph, x, work / "cmsis_nn", args.target, flash=flash)
                side = "hwprune"
                # as the export writes it: int16 quad weights where the model's own weight bytes allow
                write_int8_c(exported, work / "c", wide_weights(exported, graph))
                ours = run_mcu(exported, work / "c", x, work, args.target, flash=flash)
        except HwpruneError as exc:
            done = "" if side == "CMSIS-NN" else (f" (CMSIS-NN: bit-exact {np.array_equal(theirs.outputs, expected)}, "
                                                  f"{theirs.cycles:,.0f} cycles)")
            print(f"| {label} | {side} failed: {str(exc).splitlines()[0]}{done} |", flush=True)
            failed = True
            continue
        exact = []
        for side, run in (("hwprune", ours), ("CMSIS-NN", theirs)):
            same = bool(np.array_equal(run.outputs, expected))
            if not same:
                print(f"{label} {side}: {_mismatches(run.outputs, expected)}", file=sys.stderr)
            exact.append(same)
        failed |= not all(exact)
        best = PUBLISHED_CYCLES[label]
        macs = graph.macs
        print(f"| {label} | {exact[0]} / {exact[1]} | {ours.cycles:,.0f} | {theirs.cycles:,.0f} | "
              f"{ours.cycles / theirs.cycles:.2f} | {best:,} | {ours.cycles / best:.2f} | {theirs.cycles / best:.2f} | "
              f"{ours.flash_bytes:,} / {theirs.flash_bytes:,} | "
              f"{ours.static_ram_bytes + ours.stack_bytes:,} / {theirs.static_ram_bytes + theirs.stack_bytes:,} | "
              f"{ours.cycles * nj / 1000:,.1f} / {theirs.cycles * nj / 1000:,.1f} | {macs:,} | "
              f"{(macs - exported.macs) / macs:.1%} | {(macs - exported.macs + skipped_macs(exported)) / macs:.1%} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)
        if flash is not None:
            stalls.append(f"{label}: wait-state cycles (instruction fetch / data read) hwprune "
                          f"{ours.flash_stall_cycles[0]:,.0f} / {ours.flash_stall_cycles[1]:,.0f}, CMSIS-NN "
                          f"{theirs.flash_stall_cycles[0]:,.0f} / {theirs.flash_stall_cycles[1]:,.0f}")
        if args.profile:
            profiles.append(f"\n{label}: hwprune's cycles per layer (mean of {args.vectors} vectors)\n\n"
                            + profile_table(exported, ours))
    for line in stalls:
        print(line)
    for table in profiles:
        print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
