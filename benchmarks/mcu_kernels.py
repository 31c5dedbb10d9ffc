"""Instructions and cycles of every weight format on Cortex-M0+, M4 and M7, against dense.

    python benchmarks/mcu_kernels.py [--vectors 3] [--formats dense,csr] [--cores m0plus,m4,m7]

Three cases: one 256x256 int8 Dense layer, the jet-tagger shapes 16-64-32-32-5 (ReLU
MLP) and a small CNN (12x12x4 input, two 3x3 convs of 8 and 16 filters with ReLU and 2x2
max pooling, Dense 144-10), magnitude-pruned to each sparsity. Every export is cross-built (zig clang -O2) and
run in the unicorn emulator; each run is bit-exact against the integer reference on every
vector, layer by layer, or the script stops. Figures are per inference, means over the
vectors, measured in this run. Every format registered in hwprune.backends.c.formats is
measured (a format that cannot store a layer prints n/a); a conv-only format (csro) stores the
CNN's convs, its Dense layer staying dense. "conv/dense" is the CNN's conv layers' cycles
against the dense export's. After the table, the conv kernels' cost per output position
is fitted (least squares over the CNN's two convs at every sparsity): the coefficients of
``backends/c/cost.py``'s ``CONV_COEFFICIENTS``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import FORMATS, usable_formats
from hwprune.errors import HwpruneError
from hwprune.harness import verify
from hwprune.harness.mcu import McuEngine
from hwprune.ir import Conv2D, Dense, Flatten, Graph, MaxPool2D, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

TARGETS = {"m0plus": "mspm0g3507", "m4": "stm32l4r5", "m7": "pic32czca90"}
NO_CONV = "stores conv layers only"
TARGETS_CPU = {"m0plus": "cortex-m0plus", "m4": "cortex-m4", "m7": "cortex-m7"}
SPARSITIES = (0.0, 0.5, 0.9, 0.95)
CASES = ("256x256", "16-64-32-32-5", "cnn")
# Measured in this emulator with clang -O2 (../shared/DESIGN.md), not re-measured here.
CMSIS_NN_256 = 158_808


def _prune(w: np.ndarray, sparsity: float) -> np.ndarray:
    k = int(round(sparsity * w.size))
    if k:
        w.flat[np.argsort(np.abs(w), axis=None, kind="stable")[:k]] = 0.0
    return w


def conv_graph(sparsity: float, rng) -> tuple[Graph, np.ndarray]:
    same = ((1, 1), (1, 1))
    layers = (
        Conv2D("conv1", _prune(rng.normal(0, 0.3, (8, 3, 3, 4)), sparsity), rng.normal(0, 0.1, 8), padding=same),
        ReLU("relu1"),
        MaxPool2D("pool1", pool_size=(2, 2)),
        Conv2D("conv2", _prune(rng.normal(0, 0.2, (16, 3, 3, 8)), sparsity), rng.normal(0, 0.1, 16), padding=same),
        ReLU("relu2"),
        MaxPool2D("pool2", pool_size=(2, 2)),
        Flatten("flatten"),
        Dense("fc", _prune(rng.normal(0, 0.1, (10, 144)), sparsity), rng.normal(0, 0.1, 10)),
    )
    x = rng.uniform(-1, 1, (64, 12, 12, 4))
    return calibrate(Graph.chain("bench_cnn", (12, 12, 4), layers), x, QuantConfig(8, 8)), x


def case_graph(case: str, sparsity: float, rng) -> tuple[Graph, np.ndarray]:
    if case == "cnn":
        return conv_graph(sparsity, rng)
    sizes = (256, 256) if case == "256x256" else (16, 64, 32, 32, 5)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(f"fc{k + 1}", _prune(rng.normal(0, 0.1, (n_out, n_in)), sparsity), rng.normal(0, 0.1, n_out)))
        if k < len(sizes) - 2:
            layers.append(ReLU(f"relu{k + 1}"))
    x = rng.uniform(-1, 1, (64, sizes[0]))
    graph = calibrate(Graph.chain(f"bench_{sizes[0]}_{len(sizes)}", (sizes[0],), tuple(layers)), x, QuantConfig(8, 8))
    return graph, x


def format_spec(graph: Graph, fmt: str):
    """``fmt`` for every layer; a conv-only format leaves the Dense layers dense."""
    if FORMATS[fmt].spatial:
        return {"*": fmt, **{l.name: "dense" for l in graph.weighted_layers() if fmt not in usable_formats(l)}}
    return fmt


def conv_terms(graph: Graph) -> dict[str, tuple[int, int, int, int]]:
    """Per conv layer: output positions, nonzero weights, filters, filter-matrix entries."""
    from hwprune.reference import dense_integers

    terms = {}
    for layer in graph.layers:
        if layer.kind in ("conv1d", "conv2d"):
            w, _ = dense_integers(layer)
            positions = int(np.prod(graph.shape_of(layer.name)[:-1]))
            terms[layer.name] = (positions, int(np.count_nonzero(w)), w.shape[0], w.size)
    return terms


def fit_conv(samples: list[tuple[str, tuple[int, int, int, int], float]]) -> dict[str, tuple[float, float, float]]:
    """Per format (per_entry, per_row, per_weight) instructions per output position."""
    fitted = {}
    for fmt in sorted({f for f, _, _ in samples}):
        rows = [(t, y) for f, t, y in samples if f == fmt]
        y = np.array([y / t[0] for t, y in rows])
        if fmt == "dense":
            a = np.array([[t[3]] for t, _ in rows], dtype=float)
            (pw,), *_ = np.linalg.lstsq(a, y, rcond=None)
            fitted[fmt] = (0.0, 0.0, round(float(pw), 2))
        else:
            a = np.array([[t[1], t[2]] for t, _ in rows], dtype=float)
            (pe, pr), *_ = np.linalg.lstsq(a, y, rcond=None)
            fitted[fmt] = (round(float(pe), 2), round(float(pr), 2), 0.0)
    return fitted


def measure(graph: Graph, x: np.ndarray, fmt: str, target: str, root: Path):
    c_dir = root / f"{graph.name}_{fmt}"
    export_c(graph, c_dir, format_spec(graph, fmt))
    engine = McuEngine(target=target)
    result = verify(c_dir, reference.quantize_input(graph, x), [engine])
    if not result.bit_exact:
        raise SystemExit(f"{graph.name} {fmt} on {target}: NOT bit-exact\n{result.report()}")
    return engine.last_measurement


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=3)
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated (default: every registered)")
    parser.add_argument("--cores", default=",".join(TARGETS), help=f"comma-separated from {', '.join(TARGETS)}")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated from {', '.join(CASES)}")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    print(f"{'core':<7} {'case':<15} {'sparsity':>8} {'format':<9} {'instructions':>12} {'cycles':>10} "
          f"{'instr/MAC':>9} {'instr/nz':>8} {'flash B':>8} {'cycles/dense':>12} {'instr/CMSIS-NN':>14} {'conv/dense':>10}")
    samples = {core: [] for core in args.cores.split(",")}
    with tempfile.TemporaryDirectory(prefix="hwprune-bench-") as tmp:
        for core in args.cores.split(","):
            target = TARGETS[core]
            for case in args.cases.split(","):
                for sparsity in SPARSITIES:
                    graph, x = case_graph(case, sparsity, np.random.default_rng(0))
                    x = x[:args.vectors]
                    macs = graph.macs
                    nonzero = graph.nonzero_macs  # a conv's nonzero weights count at every output position
                    dense_cycles = dense_conv = None
                    terms = conv_terms(graph)
                    for fmt in formats:
                        if FORMATS[fmt].spatial and not terms:
                            print(f"{core:<7} {case:<15} {sparsity:>8.2f} {fmt:<9} n/a ({NO_CONV})")
                            continue
                        try:
                            m = measure(graph, x, fmt, target, Path(tmp))
                        except HwpruneError as exc:
                            print(f"{core:<7} {case:<15} {sparsity:>8.2f} {fmt:<9} n/a ({exc})")
                            continue
                        conv = sum(layer.cycles for layer in m.layers if layer.name in terms)
                        if fmt == "dense":
                            dense_cycles, dense_conv = m.cycles, conv
                        samples[core] += [(fmt, terms[layer.name], layer.instructions) for layer in m.layers
                                          if layer.name in terms]
                        vs_conv = f"{conv / dense_conv:.3f}" if terms and dense_conv else "-"
                        kernel = sum(layer.instructions for layer in m.layers)
                        vs_dense = f"{m.cycles / dense_cycles:.3f}" if dense_cycles else "-"
                        vs_cmsis = f"{m.instructions / CMSIS_NN_256:.3f}" if case == "256x256" and core == "m4" else "-"
                        print(f"{core:<7} {case:<15} {sparsity:>8.2f} {fmt:<9} {m.instructions:>12.0f} {m.cycles:>10.0f} "
                              f"{kernel / macs:>9.2f} {kernel / max(nonzero, 1):>8.2f} {m.flash_bytes:>8} "
                              f"{vs_dense:>12} {vs_cmsis:>14} {vs_conv:>10}", flush=True)
    print(f"instr/MAC and instr/nz: the layer kernels' instructions per dense MAC and per MAC on a nonzero weight; "
          f"instr/CMSIS-NN: against arm_fully_connected_s8 on 256x256 ({CMSIS_NN_256} instructions, DESIGN.md); "
          f"conv/dense: the CNN's conv layers' cycles against the dense export's")
    for core, rows in samples.items():
        if rows:
            print(f"conv kernels on {core}, instructions per output position (per nonzero, per filter, per weight):")
            for fmt, coefficients in fit_conv(rows).items():
                print(f"    (\"{TARGETS_CPU[core]}\", \"{fmt}\"): {coefficients},")
    return 0


if __name__ == "__main__":
    sys.exit(main())
