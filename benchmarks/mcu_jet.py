"""The hls4ml jet tagger (three_layer_model.pt, 16-64-32-32-5) pruned to 95 %, exported for
a Cortex-M target and measured in the emulator.

    python benchmarks/mcu_jet.py [--target stm32l4r5] [--sparsity 0.95] [--out DIR]

The model file is a legacy pickle of the whole module: it is loaded here with
``torch.load(weights_only=False)`` on purpose, because it is a known file from the public
hls4ml example-models repository (copied to tests/data). The jet data set is not shipped,
so calibration and test vectors are 1,000 standard-normal inputs (the tagger's 16
features are standardized). Pruning is one-shot layer-wise magnitude (no fine-tuning
without the data). Prints the firmware's flash, RAM, stack, instructions, cycles, latency
and energy per inference; ``--out`` keeps the export folder with its report.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

MODEL = Path(__file__).resolve().parent.parent / "tests" / "data" / "three_layer_model.pt"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="stm32l4r5")
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--out", help="keep the export folder here")
    args = parser.parse_args(argv)

    import torch

    from hwprune.frontends.torch import from_torch
    from hwprune.pipeline import ExportOptions, export_model

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # source-changed warnings of an old pickle
        module = torch.load(MODEL, map_location="cpu", weights_only=False)  # trusted: see the docstring
    graph = from_torch(module.eval(), name="jet_tagger")
    original = sum(layer.weight.size for layer in graph.dense_layers())
    x = np.random.default_rng(0).normal(size=(args.vectors, 16))
    options = ExportOptions(sparsity=args.sparsity, target=args.target)
    with tempfile.TemporaryDirectory(prefix="hwprune-jet-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "jet"
        export_model(graph, out, x, options, force=bool(args.out), source=str(MODEL.name))
        report = json.loads((out / "report.json").read_text())
    m = report.get("mcu")
    if not m:
        print(f"the mcu engine did not run: {report['engines'].get('mcu', {}).get('note', 'no Cortex-M target')}",
              file=sys.stderr)
        return 1
    print(f"jet tagger 16-64-32-32-5 pruned to {args.sparsity * 100:.0f} % of {original} weights: "
          f"{report['nonzero_weights']} nonzero ({report['nonzero_weights'] / original * 100:.1f} %), "
          f"{report['total_weights']} stored after removing dead neurons {report['removed_neurons']}; "
          f"{report['vectors']} vectors, "
          f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact'}")
    print(f"target {m['target']} ({m['core']}, {m['clock_mhz']:g} MHz, {m['energy_nj_per_cycle']} nJ/cycle)")
    rows = [("flash (text+rodata+data)", f"{m['flash_bytes']} B"),
            ("RAM (data+bss+stack)", f"{m['ram_bytes']} B"),
            ("  activation arena", f"{m['arena_bytes']} B"),
            ("  stack high-water mark", f"{m['stack_bytes']} B"),
            ("instructions / inference", f"{m['instructions']:.0f}"),
            ("cycles / inference", f"{m['cycles']:.0f}"),
            ("latency", f"{m['latency_us']:.2f} us"),
            ("energy / inference", f"{m['energy_uj']:.3f} uJ")]
    for name, value in rows:
        print(f"  {name:<26} {value:>12}")
    for layer in m["layers"]:
        print(f"  layer {layer['name']:<19} {layer['instructions']:>8.0f} instructions {layer['cycles']:>8.0f} cycles")
    base = m.get("dense_baseline")
    if base:
        print(f"  every layer stored dense instead: {base['cycles']:.0f} cycles, {base['flash_bytes']} B flash; the "
              f"exported formats take {m['cycles'] / base['cycles']:.2f}x the cycles, "
              f"{m['flash_bytes'] / base['flash_bytes']:.2f}x the flash")
    return 0 if report["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
