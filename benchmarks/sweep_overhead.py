"""The sweep engine's overhead: a sweep's wall time against its trials' own time.

    python -m benchmarks.sweep_overhead [--workers 2] [--trials-per-config 2]

Runs a 24-trial sweep of an iris MLP (2 methods x 3 sparsities x 2 widths x 2 seeds) on a
local Ray with ``--workers`` CPUs and prints the wall time, the sum of the trials' own
times divided by the workers (the ideal wall time), and their ratio. Ray's start-up, the
transfer of the model and data, and unpacking the exports are the overhead. Run it on a
quiet machine: other load inflates both times, not in the same proportion.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _iris_model(folder: Path) -> tuple[Path, Path]:
    import torch
    from sklearn.datasets import load_iris

    from hwprune.prune.train import fit, make_mlp

    data = load_iris()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    np.savez(folder / "iris.npz", x=x, y=data.target)
    torch.set_num_threads(1)
    model = make_mlp((4, 32, 16, 3), seed=0)
    fit(model, x, data.target, 60, lr=3e-3)
    torch.save(model, folder / "iris.pt")
    return folder / "iris.pt", folder / "iris.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    from hwprune.sweep import SweepSpec, load_inputs, sha256_file, sweep

    with tempfile.TemporaryDirectory() as tmp:
        model, data = _iris_model(Path(tmp))
        spec = SweepSpec(sha256_file(model), sha256_file(data), None, "host", (0.5, 0.7, 0.9), ("magnitude", "neurons"),
                         ("oneshot",), (4, 8), args.seeds, "flash", 0.9, epochs=args.epochs, name="iris")
        inputs = load_inputs(model, data, None)
        started = time.perf_counter()
        summary = sweep(spec, inputs, Path(tmp) / "sweep", workers=args.workers, progress=False)
        wall = time.perf_counter() - started
    trials = summary["trials"]
    busy = sum(r["seconds"] for r in trials)
    ideal = busy / args.workers
    print(f"| trials | workers | wall s | sum of trial s | ideal wall s (sum / workers) | wall / ideal |")
    print(f"|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(trials)} | {args.workers} | {wall:.1f} | {busy:.1f} | {ideal:.1f} | {wall / ideal:.2f} |")


if __name__ == "__main__":
    main()
