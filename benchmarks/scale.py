"""Export and verify at scale: wall time, peak memory and folder size against weight count.

    python benchmarks/scale.py [--sizes 1e4 1e5 1e6] [--sparsity 0.95] [--out DIR]

For each size an MLP ``n -> h -> 10`` with about that many weights, magnitude-pruned at
random to the sparsity, is saved with torch.save and run through ``hwprune export`` and
``hwprune verify`` as a user would (separate processes); the table gives each command's
wall time and peak resident memory (``wait4``), the export folder's size and the C
sources' size. One run, one machine: compare the rows, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _run(args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, the part a loaded machine does not inflate)
    and peak RSS in MiB of ``python -m hwprune ARGS`` (its compiler runs included)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hwprune", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"hwprune {' '.join(args)} exited {code}: {proc.stderr.read()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _model(weights: int, sparsity: float, folder: Path) -> tuple[Path, Path, int]:
    import torch
    from torch import nn

    hidden = int(round((-10 + math.sqrt(100 + 4 * weights)) / 2))  # n*h + 10*h = weights with n = h
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10)).eval()
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight[torch.rand_like(layer.weight) < sparsity] = 0.0
    path = folder / f"mlp_{weights}.pt"
    torch.save(model, path)
    x = folder / f"x_{weights}.npy"
    np.save(x, np.random.default_rng(0).normal(size=(200, hidden)))
    return path, x, hidden * hidden + 10 * hidden


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--out", help="keep the exports here (default: a temporary folder)")
    args = parser.parse_args(argv)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="hwprune-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in args.sizes:
            model, x, weights = _model(int(size), args.sparsity, root)
            out = root / f"export_{weights}"
            if out.exists():
                shutil.rmtree(out)
            export_s, export_cpu, export_mib = _run(["export", str(model), "--calibration", str(x), "--out", str(out),
                                          "--keep-dead-neurons"])
            verify_s, verify_cpu, verify_mib = _run(["verify", str(out)])
            rows.append((weights, export_s, export_cpu, export_mib, verify_s, verify_cpu, verify_mib, _size(out) / 2**20,
                         _size(out / "c") / 2**20))
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    print(f"MLP n -> n -> 10 at {args.sparsity:.0%} sparsity, 200 test vectors, 8-bit; one run on this machine")
    print()
    print(f"load average at the end of the run: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    print()
    print("| weights | export wall s | export CPU s | export peak MiB | verify wall s | verify CPU s | verify peak MiB "
          "| folder MiB | C sources MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w, es, ec, em, vs, vc, vm, fs, cs in rows:
        print(f"| {w:,} | {es:.1f} | {ec:.1f} | {em:.0f} | {vs:.1f} | {vc:.1f} | {vm:.0f} | {fs:.2f} | {cs:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
