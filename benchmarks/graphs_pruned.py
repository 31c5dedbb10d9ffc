"""Graph networks dense and pruned on the Cortex-M4: ResNet-8, the MobileNetV2 block stack
(0.35 width, 96x96) and the concatenation net, each saved as a torch.export ``.pt2``,
pruned to 80 % by global magnitude and by filters with ``hwprune prune`` (fine-tuned on
scikit-learn's digits scaled to the input size, three channels) and exported with
``hwprune export --target stm32l4r5``: weights, MACs, M4 cycles, RAM, and whether the
reference, host C and firmware agree bit for bit; the channels of every Add and
Concatenate, dense -> filter-pruned.

    python -m benchmarks.graphs_pruned [--models resnet8,mobilenetv2,concat] [--epochs 1] [--images 128]

The commands run in child processes, as a user runs them (one thread for training).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from benchmarks.graph_models import TorchConcatNet, TorchMobileNetV2, TorchResNet8, randomize_batchnorm
from hwprune.ir.io import load_graph

MODELS = {"resnet8": (TorchResNet8, 32), "mobilenetv2": (TorchMobileNetV2, 96), "concat": (TorchConcatNet, 32)}
PRUNINGS = {"global magnitude 80 %": ["--scope", "global"], "filters 80 % of units": ["--method", "filters"]}


def _hwprune(*args, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "hwprune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"hwprune {' '.join(map(str, args))} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def _files(tmp: Path, name: str, images: int) -> None:
    cls, size = MODELS[name]
    torch.manual_seed(0)
    model = randomize_batchnorm(cls()).eval()
    torch.export.save(torch.export.export(model, (torch.randn(2, 3, size, size),)), tmp / f"{name}.pt2")
    digits = load_digits()
    scale = size // 8
    x = np.kron(digits.images[:images] / 16.0, np.ones((scale, scale)))
    x = np.repeat(x[:, None], 3, axis=1).astype(np.float32)
    np.savez(tmp / f"{name}_data.npz", x=x, y=digits.target[:images])
    np.save(tmp / f"{name}_cal.npy", x[:3])


def _export(tmp: Path, name: str, source: str, out: str) -> dict:
    _hwprune("export", source, "--calibration", f"{name}_cal.npy", "--out", out, "--target", "stm32l4r5", cwd=tmp)
    report = json.loads((tmp / out / "report.json").read_text())
    engines = report["engines"]
    exact = all(engines[e]["bit_exact"] is True for e in ("reference", "host", "mcu"))
    graph = load_graph(tmp / out)
    return {"weights": graph.total_weights, "nonzero": graph.nonzero_weights, "macs": report.get("macs"),
            "cycles": report["cycles"],
            "ram": report.get("ram_bytes"), "exact": exact, "graph": graph}


def _merges(graph) -> dict:
    return {layer.name: graph.shape_of(layer.name)[-1] for layer in graph.layers
            if layer.kind in ("add", "concatenate")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet8,mobilenetv2,concat")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs of hwprune prune")
    p.add_argument("--images", type=int, default=128, help="digits used for fine-tuning")
    args = p.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        p.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    print("| model | pruning | weights (nonzero) | MACs | M4 cycles | cycles / dense | RAM B | reference = host = M4 |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    merges = []
    with tempfile.TemporaryDirectory(prefix="graphs_pruned-") as folder:
        tmp = Path(folder)
        for name in names:
            _files(tmp, name, args.images)
            dense = _export(tmp, name, f"{name}.pt2", f"{name}_dense")
            rows = [("dense", dense)]
            for label, options in PRUNINGS.items():
                out = f"{name}_{options[-1]}"
                _hwprune("prune", f"{name}.pt2", "--data", f"{name}_data.npz", "--out", out, "--sparsity", "0.8",
                         "--epochs", args.epochs, "--batch-size", 32, "--threads", 1, *options, cwd=tmp)
                rows.append((label, _export(tmp, name, out, f"{out}_m4")))
            for label, r in rows:
                print(f"| {name} | {label} | {r['weights']:,} ({r['nonzero']:,}) | {r['macs'] or 0:,} | "
                      f"{r['cycles']:,.0f} | {r['cycles'] / dense['cycles']:.3f} | {r['ram'] or 0:,} | "
                      f"{'yes' if r['exact'] else 'NO'} |", flush=True)
            before, after = _merges(dense["graph"]), _merges(rows[-1][1]["graph"])
            merges += [f"{name} {layer}: {before[layer]} -> {after.get(layer, 'removed')}" for layer in before]
    print("\nchannels of every Add / Concatenate, dense -> filter-pruned:")
    print("\n".join(merges))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
