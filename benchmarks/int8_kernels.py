"""Single int8 layers on the Cortex-M4: hwprune's int8 C kernels beside CMSIS-NN's, per MAC.

Each layer (random int8 weights, dense, per-channel multipliers) runs as a one-layer graph
through ``backends.c_int8`` (the DSP kernels of templates/c/hwprune_int8_simd.h) and as the
CMSIS-NN call TFLM would make (``benchmarks.cmsis_nn``), both in the same emulator with the
same cycle table, outputs compared with the integer reference. Printed: instructions and
cycles per inference and per MAC of each (the whole layer: widening, im2col,
requantization included).

    python -m benchmarks.int8_kernels [--target stm32l4r5]

CMSIS-NN's folder: ``$CMSIS_NN_DIR`` (default ../shared/third_party/cmsis-nn).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.cmsis_nn import run_cmsis_nn
from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.errors import HwpruneError
from hwprune.harness.mcu_int8 import run_mcu
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, Int8Dense, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers
from hwprune.tempdirs import temp_dir

IN_T, OUT_T = Int8Affine(0.05, -7), Int8Affine(0.1, 3)


def _types(rng, n):
    scales = rng.uniform(0.001, 0.01, size=n)
    mult, shift = conv_multipliers(IN_T.scale, scales, OUT_T.scale)
    return {**int8_types(OUT_T), "weight_scale": scales, "out_multiplier": mult, "out_shift": shift,
            "act_min": -128, "act_max": 127}


def dense(n_in: int, n_out: int) -> Graph:
    rng = np.random.default_rng(0)
    layer = Int8Dense("fc", weight=rng.integers(-127, 128, size=(n_out, n_in)),
                      bias=rng.integers(-5000, 5000, size=n_out), inputs=("x",), **_types(rng, n_out))
    return Graph(f"fc{n_in}x{n_out}", (GraphInput("x", (n_in,), IN_T),), (layer,))


def conv(h: int, w: int, cin: int, cout: int, k: int, depthwise: bool = False) -> Graph:
    rng = np.random.default_rng(0)
    pad = (k // 2, k // 2)
    layer = Int8Conv2D("conv", weight=rng.integers(-127, 128, size=(cout, k, k, 1 if depthwise else cin)),
                       bias=rng.integers(-5000, 5000, size=cout), stride=(1, 1), padding=(pad, pad),
                       depthwise=depthwise, inputs=("x",), **_types(rng, cout))
    kind = "dw" if depthwise else "conv"
    return Graph(f"{kind}{k}x{k}_{h}x{w}x{cin}_{cout}", (GraphInput("x", (h, w, cin), IN_T),), (layer,))


LAYERS = (
    lambda: dense(256, 256),
    lambda: conv(32, 32, 16, 16, 3),  # ResNet-8's (IC) first stage
    lambda: conv(16, 16, 32, 32, 3),
    lambda: conv(25, 5, 64, 64, 1),  # DS-CNN's (KWS) pointwise
    lambda: conv(25, 5, 64, 64, 3, depthwise=True),  # DS-CNN's depthwise
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="stm32l4r5")
    args = parser.parse_args(argv)
    print("| layer | MACs | bit-exact hwprune / CMSIS-NN | hwprune instructions | per MAC | hwprune cycles | per MAC | "
          "CMSIS-NN instructions | per MAC | CMSIS-NN cycles | per MAC | cycles hwprune / CMSIS-NN |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = False
    for make in LAYERS:
        graph = make()
        x = np.random.default_rng(1).integers(-128, 128, size=(1, *graph.input_shape))
        want = reference.run(graph, x)
        macs = graph.macs
        try:
            with temp_dir("int8k") as work:
                write_int8_c(graph, work / "c")
                ours = run_mcu(graph, work / "c", x, work, args.target)
                theirs = run_cmsis_nn(graph, x, work / "cmsis", args.target)
        except HwpruneError as exc:
            print(f"| {graph.name} | not run: {str(exc).splitlines()[0]} |")
            failed = True
            continue
        exact = (bool(np.array_equal(ours.outputs, want)), bool(np.array_equal(theirs.outputs, want)))
        failed |= not all(exact)
        print(f"| {graph.name} | {macs:,} | {exact[0]} / {exact[1]} | {ours.instructions:,.0f} | "
              f"{ours.instructions / macs:.2f} | {ours.cycles:,.0f} | {ours.cycles / macs:.2f} | "
              f"{theirs.instructions:,.0f} | {theirs.instructions / macs:.2f} | {theirs.cycles:,.0f} | "
              f"{theirs.cycles / macs:.2f} | {ours.cycles / theirs.cycles:.2f} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
