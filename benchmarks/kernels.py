"""Instructions per inference of every storage format against dense, on Cortex-M cores.

    python benchmarks/kernels.py [--cores m0plus,m4,m7] [--size 256] [--opt O2]
                                 [--sparsities 0.5,0.9,0.95] [--fit]

One Dense layer (size x size, int8 weights and activations, ReLU fused) per sparsity,
pruned by magnitude; each format exported, cross-built with ziglang's clang and run in
the ``mcu`` engine (hwprune/harness/mcu.py), its outputs checked bit-exact against the
integer reference; instructions and cycles per inference of the layer. Besides the
counts, the table gives instructions per nonzero (per MAC for dense) and the ratio to
CMSIS-NN's
``arm_fully_connected_s8`` on the same layer shape (158,808 instructions for 256x256 on
the M4, measured in the same emulator with clang -O2; see docs/kernels.md).

``--fit`` prints the least-squares coefficients of the cost model in
``hwprune/backends/c/cost.py`` (instructions = per_entry * stored entries + per_row *
rows + per_weight * rows * columns) for each core and format. nm layers are pruned 2:4
first; a 2:4 layer stores two slots per group whatever its sparsity, so its count does
not fall below the 50 % one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.cost import stored_entries
from hwprune.backends.c.formats import FORMATS, FormatNotApplicable
from hwprune.harness.mcu import McuEngine
from hwprune.ir import Dense, Graph, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

TARGETS = {"m0plus": "mspm0g3507", "m4": "stm32l4r5", "m7": "pic32czca90", "m33": "nrf54l15"}

CMSIS_NN_256 = 158_808  # arm_fully_connected_s8, 256x256, Cortex-M4, clang -O2 (DESIGN.md)


def layer_graph(size: int, sparsity: float, seed: int = 0, nm: bool = False) -> Graph:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.1, (size, size))
    if nm:  # 2:4 in every group of four inputs, then magnitude pruning to the sparsity
        groups = np.abs(w).reshape(size, -1, 4)
        w.reshape(size, -1, 4)[np.argsort(np.argsort(groups, axis=2), axis=2) < 2] = 0.0
    k = int(round(sparsity * w.size)) - int(np.sum(w == 0))
    if k > 0:
        live = np.flatnonzero(w)
        w.flat[live[np.argsort(np.abs(w.flat[live]), kind="stable")[:k]]] = 0.0
    x = rng.uniform(-1, 1, (64, size))
    return calibrate(Graph.chain("bench", (size,), (Dense("fc", w, rng.normal(0, 0.1, size)), ReLU("relu"))),
                     x, QuantConfig(8, 8))


def measure_all(size, sparsities, cores, opt, formats, progress=True):
    rows = []
    rng = np.random.default_rng(1)
    for sparsity in sparsities:
        for nm in (False, True):
            graph = layer_graph(size, sparsity, nm=nm)
            x = rng.integers(graph.input_t.min_int, graph.input_t.max_int + 1, size=(2, size))
            for fmt in formats:
                if (fmt == "nm") != nm:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        exported = export_c(graph, Path(tmp), fmt)
                    except FormatNotApplicable:
                        continue
                    storage = exported.layers[0]
                    for core in cores:
                        engine = McuEngine(target=TARGETS[core], opt=f"-{opt}", trace=False)
                        run = engine.run(Path(tmp), x)
                        want = reference.run(graph, x)
                        if not np.array_equal(run.outputs, want):
                            raise SystemExit(f"{fmt} on {core}: not bit-exact at {np.argwhere(run.outputs != want)[0]}")
                        layer = next(c for c in engine.last_measurement.layers if c.name == "fc")
                        rows.append({"sparsity": sparsity, "format": fmt, "core": core, "storage": storage,
                                     "instructions": round(layer.instructions), "cycles": round(layer.cycles),
                                     "text": engine.last_measurement.flash_bytes})
                        if progress:
                            print(f"  {sparsity:.2f} {fmt:9} {core:7} {rows[-1]['instructions']:>9}", file=sys.stderr)
    return rows


def fit(rows):
    """Per core and format: least-squares (per_entry, per_row, per_weight)."""
    out = {}
    for core in sorted({r["core"] for r in rows}):
        for fmt in FORMATS:
            sel = [r for r in rows if r["core"] == core and r["format"] == fmt]
            if not sel:
                continue
            a = np.array([[stored_entries(r["storage"]), r["storage"].out_features,
                           r["storage"].total_weights] for r in sel], dtype=float)
            b = np.array([r["instructions"] for r in sel], dtype=float)
            cols = {"dense": [2], "bitmask": [0, 2]}.get(fmt, [0, 1])  # bitmask walks every mask chunk
            coef, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            full = [0.0, 0.0, 0.0]
            for c, v in zip(cols, coef):
                full[c] = round(float(v), 2)
            out[(core, fmt)] = tuple(full)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="m0plus,m4,m7")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--opt", default="O2")
    parser.add_argument("--sparsities", default="0.5,0.9,0.95")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--fit", action="store_true")
    args = parser.parse_args(argv)
    cores = args.cores.split(",")
    sparsities = [float(s) for s in args.sparsities.split(",")]
    rows = measure_all(args.size, sparsities, cores, args.opt, args.formats.split(","))
    print(f"{args.size}x{args.size} int8 Dense + ReLU, clang -{args.opt}, the layer's instructions and cycles per "
          f"inference (bit-exact in the emulator); flash of the whole firmware\n")
    print("| sparsity | format | core | instructions | cycles | per nonzero | vs dense | vs CMSIS-NN dense (M4) | "
          "flash B |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    dense = {(r["sparsity"], r["core"]): r["instructions"] for r in rows if r["format"] == "dense"}
    for r in rows:
        s = r["storage"]
        per = r["instructions"] / max(s.nonzero_weights if r["format"] != "dense" else s.total_weights, 1)
        ref = dense.get((r["sparsity"], r["core"]))
        cmsis = f"{r['instructions'] / CMSIS_NN_256:.3f}" if args.size == 256 and r["core"] == "m4" else ""
        ratio = f"{r['instructions'] / ref:.3f}" if ref else ""
        print(f"| {r['sparsity']:.2f} | {r['format']}{' ' + str(s.param) if s.params else ''} | {r['core']} | "
              f"{r['instructions']:,} | {r['cycles']:,} | {per:.2f} | {ratio} | {cmsis} | {r['text']:,} |")
    if args.fit:
        print("\ncost model fit: (per_entry, per_row, per_weight)")
        for (core, fmt), coef in fit(rows).items():
            print(f"    ({core!r}, {fmt!r}): {coef},")
    return 0


if __name__ == "__main__":
    sys.exit(main())
