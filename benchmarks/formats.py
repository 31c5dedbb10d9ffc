"""Storage and host speed of the C formats against sparsity, for one 256x256 int8 layer.

    python benchmarks/formats.py [--reps 20000]

Prints, per sparsity: weight bytes of dense and csr, bits per nonzero weight (indices
included), the entropy bound log2 C(n, k) / k, and the host time of csr relative to
dense, measured in this run (same compiler, same flags, same machine moment). Each
export is verified bit-exact against the integer reference before it is timed.
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
from hwprune.harness import verify
from hwprune.harness.build import HOST_FLAGS, compile_executable, find_cc
from hwprune.ir import Dense, Graph, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

HERE = Path(__file__).parent
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
SIZE = 256


def layer_graph(sparsity: float, rng) -> Graph:
    w = rng.normal(0, 0.1, (SIZE, SIZE))
    k = int(round(sparsity * w.size))
    if k:
        w.flat[np.argsort(np.abs(w), axis=None, kind="stable")[:k]] = 0.0
    return Graph("bench", (SIZE,), (Dense("fc", w, rng.normal(0, 0.1, SIZE)), ReLU("relu")))


def time_export(c_dir: Path, reps: int) -> float:
    exe = c_dir / "time_predict"
    flags = HOST_FLAGS
    compile_executable([c_dir / "model.c", HERE / "c" / "time_predict.c"], exe, [c_dir], ("HWPRUNE_DRIVER",),
                       flags, find_cc())
    best = min(float(subprocess.run([str(exe), str(reps)], capture_output=True, text=True, check=True).stdout.split()[0])
               for _ in range(3))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, SIZE))
    print(f"{'sparsity':>8} {'dense B':>8} {'csr B':>8} {'csr bits/nz':>11} {'bound bits/nz':>13} "
          f"{'dense ns':>9} {'csr ns':>8} {'csr/dense time':>14}")
    for sparsity in SPARSITIES:
        graph = calibrate(layer_graph(sparsity, rng), x, QuantConfig(8, 8))
        row = {}
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in ("dense", "csr"):
                c_dir = Path(tmp) / fmt
                exported = export_c(graph, c_dir, fmt)
                result = verify(c_dir, reference.quantize_input(graph, x))
                if not result.bit_exact:
                    print(result.report(), file=sys.stderr)
                    return 1
                storage = exported.layers[0]
                row[fmt] = (storage, time_export(c_dir, args.reps))
        dense, csr = row["dense"], row["csr"]
        k = csr[0].nonzero_weights
        print(f"{sparsity:>8.2f} {dense[0].weight_bytes:>8} {csr[0].weight_bytes:>8} {csr[0].bits_per_nonzero:>11.2f} "
              f"{csr[0].entropy_bits / max(k, 1):>13.2f} {dense[1]:>9.0f} {csr[1]:>8.0f} {csr[1] / dense[1]:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
