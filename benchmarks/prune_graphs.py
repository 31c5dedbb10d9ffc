"""Pruning a graph with branches: MLPerf Tiny's ResNet-8 (16/32/64 filters, 1x1 conv
shortcuts, 32x32x3 inputs; ``tests/unit/torch_dag_models.py``) trained on scikit-learn's
digits scaled to 32x32 (three equal channels), then pruned to --sparsity by global
magnitude and by filters (tied through every Add) with fine-tuning, and quantized; with
--qat-bits the magnitude-pruned network is also fine-tuned quantization-aware on its graph
and compared with post-training quantization at the same widths.

    python benchmarks/prune_graphs.py [--train 1000] [--epochs 4] [--finetune 2] [--sparsity 0.8]
                                      [--bits 8] [--qat-bits 4]

Accuracy is on held-out digits: float (the graph's torch twin) and the integer reference
of the quantized graph. Weights and MACs are the IR's (MACs count every weight, zeros
included, as a dense kernel does; "nonzero MACs" those of nonzero weights). One thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from hwprune import reference
from hwprune.frontends.torch import from_torch
from hwprune.frontends.torch_twin import GraphTwin
from hwprune.prune.algorithms import TrainOptions, oneshot
from hwprune.prune.structured_graph import prune_units
from hwprune.prune.train import evaluate, fit
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.qat.model import prepare_qat, qat_graph

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "unit"))
from torch_dag_models import ResNet8  # noqa: E402


def digits32(count: int, seed: int = 0):
    d = load_digits()
    order = np.random.default_rng(seed).permutation(len(d.target))
    images = np.kron(d.images[order] / 16.0, np.ones((4, 4)))  # 8x8 -> 32x32
    x = np.repeat(images[:, None], 3, axis=1).astype(np.float32)
    y = d.target[order]
    return (x[:count], y[:count]), (x[count:], y[count:])


def int_accuracy(graph, x_cal, x, y, bits: int) -> float:
    quantized = calibrate(graph, x_cal, QuantConfig(bits, bits))
    return float((reference.predict(quantized, x).argmax(axis=1) == y).mean())


def row(label, graph, base, float_acc, int_acc, seconds):
    print(f"| {label} | {graph.total_weights:,} | {graph.nonzero_weights:,} "
          f"({1 - graph.nonzero_weights / base.total_weights:.1%} removed) | {graph.macs:,} | {graph.nonzero_macs:,} "
          f"| {float_acc:.2%} | {int_acc:.2%} | {seconds:.1f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=4, help="dense training epochs")
    p.add_argument("--finetune", type=int, default=2, help="fine-tuning epochs after pruning")
    p.add_argument("--sparsity", type=float, default=0.8)
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--qat-bits", type=int, default=0, help="also QAT the magnitude-pruned graph at these widths")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    (x, y), (x_test, y_test) = digits32(args.train)
    x_cal = x[:256]
    torch.manual_seed(0)
    start = time.perf_counter()
    dense = from_torch(ResNet8().eval(), (3, 32, 32), name="resnet8")  # BatchNorm at its init folds to identity
    twin = GraphTwin(dense, torch.float32)
    fit(twin, x, y, args.epochs, lr=3e-3, batch_size=32)
    dense = twin.to_graph()
    seconds = time.perf_counter() - start
    train = TrainOptions(lr=1e-3, batch_size=32)
    print(f"ResNet-8 on digits 32x32x3: {args.train} training, {len(y_test)} test images; {args.bits}-bit "
          f"fixed point; --sparsity {args.sparsity}")
    print("| model | weights | nonzero | MACs | nonzero MACs | float acc | int acc | train s |")
    print("|---|---|---|---|---|---|---|---|")
    row(f"dense ({args.epochs} epochs)", dense, dense, evaluate(GraphTwin(dense), x_test, y_test),
        int_accuracy(dense, x_cal, x_test, y_test, args.bits), seconds)

    start = time.perf_counter()
    result = oneshot(GraphTwin(dense, torch.float32), x, y, args.sparsity, scope="global", epochs=args.finetune,
                     strip=True, lr=1e-3, batch_size=32)
    magnitude = result.model.to_graph()
    row(f"global magnitude, {args.finetune} epochs", magnitude, dense, evaluate(GraphTwin(magnitude), x_test, y_test),
        int_accuracy(magnitude, x_cal, x_test, y_test, args.bits), time.perf_counter() - start)

    start = time.perf_counter()
    units = prune_units(dense, x, y, args.sparsity, train, "filters", "layer", rounds=1, epochs=args.finetune)
    row(f"filters ({units.units:.0%} of units), {args.finetune} epochs", units.graph, dense,
        evaluate(GraphTwin(units.graph), x_test, y_test), int_accuracy(units.graph, x_cal, x_test, y_test, args.bits),
        time.perf_counter() - start)
    for add in (layer for layer in dense.layers if layer.kind == "add"):
        print(f"  {add.name}: {dense.shape_of(add.name)[-1]} -> {units.graph.shape_of(add.name)[-1]} channels")

    if args.qat_bits:
        bits = args.qat_bits
        start = time.perf_counter()
        ptq = int_accuracy(magnitude, x_cal, x_test, y_test, bits)
        qat = prepare_qat(GraphTwin(magnitude, torch.float32), bits, bits, calibration_x=x_cal)
        fit(qat, x, y, 1, lr=2e-4, batch_size=32)
        qat.recalibrate(x_cal, bits, bits)
        quantized = qat_graph(qat, "resnet8")
        qat_acc = float((reference.predict(quantized, x_test).argmax(axis=1) == y_test).mean())
        print(f"\n{bits}-bit, magnitude-pruned: post-training {ptq:.2%}, after 1 epoch of QAT on the graph "
              f"{qat_acc:.2%} (integer reference; {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
