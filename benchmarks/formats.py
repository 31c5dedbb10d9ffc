"""Storage of every C format against the entropy bound, and host speed of the formats.

    python benchmarks/formats.py                   # storage table (seconds)
    python benchmarks/formats.py --host-time       # + host time per format, 256x256

Storage: for layers from 64x16 to 512x512 (int8 weights, magnitude-pruned Gaussians so
that the mask is i.i.d.) at 50 / 70 / 90 / 95 / 98 % sparsity, bits per nonzero weight of
every format, indices and pointers included, against the bound log2 C(n, k) / k + 8 value
bits; "best/bound" is the smallest format's ratio to it. nm appears only where the
unstructured mask happens to satisfy 1:8, 1:4 or 2:4 ("n/a" elsewhere).
Every encoding is decoded again and compared with the weights.

Host time (``--host-time``): each format of one 256x256 layer exported, verified
bit-exact against the integer reference, and timed on this machine relative to dense in
the same run (same compiler, flags and moment).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import FORMATS, FormatNotApplicable, decode_weights, encode_matrix, log2_binomial
from hwprune.harness import verify
from hwprune.harness.build import HOST_FLAGS, compile_executable, find_cc
from hwprune.ir import Dense, Graph, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

HERE = Path(__file__).parent
SPARSITIES = (0.5, 0.7, 0.9, 0.95, 0.98)
SHAPES = ((64, 16), (128, 64), (256, 256), (512, 512))  # (out, in)


def pruned_ints(rng, shape, sparsity) -> np.ndarray:
    w = rng.normal(0, 1, shape)
    k = int(round(sparsity * w.size))
    w.flat[np.argsort(np.abs(w), axis=None, kind="stable")[:k]] = 0.0
    q = np.round(w / np.abs(w).max() * 127).astype(np.int64)
    q[(q == 0) & (w != 0)] = 1  # a kept weight that rounds to 0 stays nonzero: the mask is the pruner's
    return q


def storage_table() -> int:
    rng = np.random.default_rng(0)
    names = [f for f in FORMATS]
    print("| layer | sparsity | bound | " + " | ".join(names) + " | best | best/bound |")
    print("|---|---:|---:|" + "---:|" * len(names) + "---|---:|")
    for shape in SHAPES:
        for sparsity in SPARSITIES:
            w = pruned_ints(rng, shape, sparsity)
            k = int(np.count_nonzero(w))
            bound = log2_binomial(w.size, k) / k + 8
            cells, best = [], None
            for name in names:
                try:
                    s = encode_matrix("fc", w, np.zeros(shape[0], dtype=np.int64), "int8_t", name)
                except FormatNotApplicable:
                    cells.append("n/a")
                    continue
                if not np.array_equal(decode_weights(s), w):
                    print(f"{name} does not round-trip on {shape} at {sparsity}", file=sys.stderr)
                    return 1
                cells.append(f"{s.bits_per_nonzero:.2f}")
                if name != "unrolled" and (best is None or s.weight_bytes < best.weight_bytes):
                    best = s
            print(f"| {shape[0]}x{shape[1]} | {sparsity:.2f} | {bound:.2f} | " + " | ".join(cells)
                  + f" | {best.format} | {best.bits_per_nonzero / bound:.3f} |")
    print("\nbits per nonzero weight, indices and pointers included; unrolled counts its estimated code bytes "
          "and is left out of 'best' (its weights are instructions)")
    return 0


def layer_graph(sparsity: float, rng, size=256) -> Graph:
    w = rng.normal(0, 0.1, (size, size))
    k = int(round(sparsity * w.size))
    if k:
        w.flat[np.argsort(np.abs(w), axis=None, kind="stable")[:k]] = 0.0
    return Graph.chain("bench", (size,), (Dense("fc", w, rng.normal(0, 0.1, size)), ReLU("relu")))


def time_export(c_dir: Path, reps: int) -> float:
    exe = c_dir / "time_predict"
    compile_executable([c_dir / "model.c", HERE / "c" / "time_predict.c"], exe, [c_dir], ("HWPRUNE_DRIVER",),
                       HOST_FLAGS, find_cc())
    return min(float(subprocess.run([str(exe), str(reps)], capture_output=True, text=True, check=True).stdout.split()[0])
               for _ in range(3))


def host_times(reps: int) -> int:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 256))
    formats = [f for f in FORMATS if f != "nm"]
    print("\n| sparsity | " + " | ".join(f"{f} ns" for f in formats) + " | " + " | ".join(
        f"{f}/dense" for f in formats[1:]) + " |")
    print("|---:|" + "---:|" * (2 * len(formats) - 1))
    for sparsity in (0.5, 0.9, 0.95):
        graph = calibrate(layer_graph(sparsity, rng), x, QuantConfig(8, 8))
        times = {}
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in formats:
                c_dir = Path(tmp) / fmt
                export_c(graph, c_dir, fmt)
                result = verify(c_dir, reference.quantize_input(graph, x))
                if not result.bit_exact:
                    print(result.report(), file=sys.stderr)
                    return 1
                times[fmt] = time_export(c_dir, reps)
        print(f"| {sparsity:.2f} | " + " | ".join(f"{times[f]:.0f}" for f in formats) + " | "
              + " | ".join(f"{times[f] / times['dense']:.2f}" for f in formats[1:]) + " |")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host-time", action="store_true", help="also time every format on the host")
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args(argv)
    status = storage_table()
    if status == 0 and args.host_time:
        status = host_times(args.reps)
    return status


if __name__ == "__main__":
    sys.exit(main())
