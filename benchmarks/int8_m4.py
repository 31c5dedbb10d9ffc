"""The int8 C of MLPerf Tiny's models on the STM32L4R5's Cortex-M4 in the emulator.

Per model: a few random int8 inputs, outputs compared with the reference, cycles and
instructions per inference, flash, static RAM and stack.

    python -m benchmarks.int8_m4 [--vectors 2] [--models ad01_int8 kws_ref_model vww_96_int8 pretrainedResnet_quant]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.mcu_int8 import run_mcu
from hwprune.tempdirs import temp_dir

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=2)
    parser.add_argument("--target", default="stm32l4r5")
    parser.add_argument("--models", nargs="+",
                        default=["ad01_int8", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant"])
    args = parser.parse_args(argv)
    print("| model | vectors | bit-exact | cycles | instructions | cycles/MAC | flash B | static RAM B | stack B | .tflite B | s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = False
    for name in args.models:
        graph = read_tflite(DATA / f"{name}.tflite", name).graph
        x = np.random.default_rng(0).integers(-128, 127, size=(args.vectors, *graph.input_shape), endpoint=True)
        start = time.perf_counter()
        with temp_dir("bench") as work:
            write_int8_c(graph, work / "c")
            run = run_mcu(graph, work / "c", x, work, args.target)
        exact = bool(np.array_equal(run.outputs, reference.run(graph, x)))
        failed |= not exact
        print(f"| {name} | {len(x)} | {exact} | {run.cycles:,.0f} | {run.instructions:,.0f} | "
              f"{run.cycles / graph.macs:.2f} | {run.flash_bytes:,} | {run.static_ram_bytes:,} | {run.stack_bytes} | "
              f"{(DATA / f'{name}.tflite').stat().st_size:,} | {time.perf_counter() - start:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
