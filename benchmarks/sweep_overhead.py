"""The sweep engine's overhead: a sweep's wall time against its trials' own time.

    python -m benchmarks.sweep_overhead [--dataset iris|digits] [--workers 2] [--seeds 2] [--epochs 5]

Runs a 24-trial sweep (2 methods x 3 sparsities x 2 widths x 2 seeds) of an MLP on iris
(4-32-16-3) or digits (64-128-64-10) on a local Ray with ``--workers`` CPUs and prints the
wall time, the sum of the trials' own times divided by the workers (the ideal wall time),
and their ratio. Ray's start-up, each worker's first import of torch and hwprune, the
transfer of the model and data, and unpacking the exports are the overhead: a few seconds
in all, so the ratio falls as trials grow. Run it on a quiet machine: other load inflates
both times, not in the same proportion.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _model(folder: Path, dataset: str) -> tuple[Path, Path]:
    import torch

    from hwprune.prune.train import fit, make_mlp

    if dataset == "iris":
        from sklearn.datasets import load_iris

        data = load_iris()
        x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
        y, sizes = data.target, (4, 32, 16, 3)
    else:
        from hwprune.data import load_dataset

        data = load_dataset("digits")
        x, y, sizes = data.x_train, data.y_train, (64, 128, 64, 10)
    np.savez(folder / "data.npz", x=x, y=y)
    torch.set_num_threads(1)
    model = make_mlp(sizes, seed=0)
    fit(model, x, y, 30, lr=3e-3)
    torch.save(model, folder / "model.pt")
    return folder / "model.pt", folder / "data.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("iris", "digits"), default="iris")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    from hwprune.sweep import SweepSpec, load_inputs, sha256_file, sweep

    with tempfile.TemporaryDirectory() as tmp:
        model, data = _model(Path(tmp), args.dataset)
        spec = SweepSpec(sha256_file(model), sha256_file(data), None, "host", (0.5, 0.7, 0.9), ("magnitude", "neurons"),
                         ("oneshot",), (4, 8), args.seeds, "flash", 0.9, epochs=args.epochs, name=args.dataset)
        inputs = load_inputs(model, data, None)
        started = time.perf_counter()
        summary = sweep(spec, inputs, Path(tmp) / "sweep", workers=args.workers, progress=False)
        wall = time.perf_counter() - started
    trials = summary["trials"]
    busy = sum(r["seconds"] for r in trials)
    ideal = busy / args.workers
    print("| data | trials | workers | epochs | wall s | sum of trial s | ideal wall s (sum / workers) | wall / ideal |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.dataset} | {len(trials)} | {args.workers} | {args.epochs} | {wall:.1f} | {busy:.1f} | {ideal:.1f} "
          f"| {wall / ideal:.2f} |")


if __name__ == "__main__":
    main()
