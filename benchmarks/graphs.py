"""Graphs, not chains: ResNet-8 (MLPerf Tiny's image-classification network) through the
C backend: export time, the activation arena against its bounds and against a plan that
never reuses memory, and bit-exactness on the host (and, with --mcu, on the Cortex-M4).

    python benchmarks/graphs.py [--bits 8,16] [--vectors 20] [--width 1.0] [--mcu N]

ResNet-8 as ``resnet_v1_eembc`` in mlcommons/tiny defines it: a 3x3 conv of 16 filters on
32x32x3, then three stacks of two 3x3 convs (16, 32, 64 filters; the second and third start
with stride 2 and add a 1x1 stride-2 conv shortcut, the first adds its input), each closed
by an Add and a ReLU, then 8x8 average pooling and a Dense of 10. Keras "same" padding: a
stride-2 3x3 conv on an even size pads (0, 1). BatchNorm is folded (random weights here:
the figures measure memory and exactness, not accuracy). ``--width`` scales the filters.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import choose_formats
from hwprune.backends.c.plan import plan_model
from hwprune.harness.engines import HostCEngine
from hwprune.ir import Add, AvgPool2D, Conv2D, Dense, Flatten, Graph, GraphInput, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate


def resnet8(rng, width: float = 1.0) -> Graph:
    f = [max(1, int(round(n * width))) for n in (16, 32, 64)]
    layers = []

    def conv(name, source, cin, cout, k, stride, pad):
        scale = np.sqrt(2.0 / (k * k * cin))
        layers.append(Conv2D(name, rng.normal(size=(cout, k, k, cin)) * scale, rng.normal(size=cout) * 0.05,
                             stride=(stride, stride), padding=(pad, pad), inputs=(source,)))
        return name

    def relu(name, source):
        layers.append(ReLU(name, inputs=(source,)))
        return name

    x = relu("relu0", conv("conv0", "input", 3, f[0], 3, 1, (1, 1)))
    cin = f[0]
    for s, cout in enumerate(f, start=1):
        stride = 1 if s == 1 else 2
        y = relu(f"s{s}_relu1", conv(f"s{s}_conv1", x, cin, cout, 3, stride, (1, 1) if stride == 1 else (0, 1)))
        y = conv(f"s{s}_conv2", y, cout, cout, 3, 1, (1, 1))
        shortcut = x if s == 1 else conv(f"s{s}_shortcut", x, cin, cout, 1, 2, (0, 0))
        layers.append(Add(f"s{s}_add", inputs=(shortcut, y)))
        x = relu(f"s{s}_relu2", f"s{s}_add")
        cin = cout
    layers.append(AvgPool2D("pool", pool_size=(8, 8), inputs=(x,)))
    layers.append(Flatten("flatten", inputs=("pool",)))
    layers.append(Dense("fc", rng.normal(size=(10, f[2])) * 0.3, np.zeros(10), inputs=("flatten",)))
    return Graph("resnet8", (GraphInput("input", (32, 32, 3)),), tuple(layers))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", default="8,16")
    p.add_argument("--vectors", type=int, default=20)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--mcu", type=int, default=0, help="vectors to run on the Cortex-M4 emulator (slow: 12.5 M MACs)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    graph = resnet8(rng, args.width)
    print(f"ResNet-8 (width {args.width}): {len(graph.layers)} layers, {graph.macs:,} MACs, "
          f"{graph.total_weights:,} weights")
    print("| bits | export s | arena B | live bound B | io bound B | never-reuse B | arena / live | host vectors |"
          + (" M4 vectors | M4 cycles/inf |" if args.mcu else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if args.mcu else ""))
    for bits in (int(b) for b in args.bits.split(",")):
        q = calibrate(graph, rng.uniform(0, 1, size=(64, 32, 32, 3)), QuantConfig(bits, bits))
        x = reference.quantize_input(q, rng.uniform(0, 1, size=(args.vectors, 32, 32, 3)))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            export_c(q, Path(tmp) / "c", "dense")
            seconds = time.perf_counter() - start
            plan = plan_model(q, choose_formats(q, "dense"))
            want = reference.run(q, x)
            got = HostCEngine().run(Path(tmp) / "c", x).outputs
            exact = int(np.all(want.reshape(len(x), -1) == got.reshape(len(x), -1), axis=1).sum())
            row = (f"| {bits} | {seconds:.1f} | {plan.arena_bytes:,} | {plan.arena_live_bound:,} | "
                   f"{plan.arena_io_bound:,} | {plan.arena_never_reuse:,} | "
                   f"{plan.arena_bytes / plan.arena_live_bound:.3f} | {exact}/{len(x)} bit-exact |")
            if args.mcu:
                from hwprune.harness.mcu import McuEngine

                engine = McuEngine(target="stm32l4r5")
                run = engine.run(Path(tmp) / "c", x[: args.mcu])
                ok = int(np.all(want[: args.mcu].reshape(args.mcu, -1) == run.outputs.reshape(args.mcu, -1), axis=1).sum())
                row += f" {ok}/{args.mcu} bit-exact | {engine.last_measurement.cycles / args.mcu:,.0f} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
