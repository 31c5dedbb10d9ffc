"""The digits CNN of issue 13 through the whole pipeline; prints the figures as tables.

    python benchmarks/conv_digits.py [--out DIR] [--seed K]

Conv2d(1, 8, 3, padding=1) - BatchNorm2d - ReLU - MaxPool2d(2) - Conv2d(8, 16, 3) - ReLU -
Flatten - Linear(64, 10), trained on scikit-learn's digits, pruned to 80 % (magnitude, global
by default) and fine-tuned, quantized to 8 bits, exported to C and verified on every test
vector. Results are copied into docs/conv.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwprune import reference
from hwprune.data import load_dataset
from hwprune.frontends.torch import from_torch
from hwprune.pipeline import ExportOptions, write_export
from hwprune.prune import apply_masks, compute_masks, evaluate, fit, strip_masks
from hwprune.quant.calibrate import QuantConfig, calibrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the export folder here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scope", choices=("layer", "global"), default="global")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_dataset("digits", seed=args.seed)
    x_train, x_test = data.x_train.reshape(-1, 1, 8, 8), data.x_test.reshape(-1, 1, 8, 8)
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))
    fit(model, x_train, data.y_train, epochs=15, lr=3e-3, seed=args.seed)
    stages = [("dense float", evaluate(model, x_test, data.y_test), 0.0)]
    apply_masks(model, compute_masks(model, 0.8, method="magnitude", scope=args.scope))
    stages.append(("pruned 80 %, before fine-tuning", evaluate(model, x_test, data.y_test), 0.8))
    fit(model, x_train, data.y_train, epochs=10, lr=2e-3, seed=args.seed + 1)
    model = strip_masks(model).eval()
    stages.append(("pruned, fine-tuned (float)", evaluate(model, x_test, data.y_test), 0.8))

    graph = calibrate(from_torch(model, (1, 8, 8), name="digits_cnn"), x_train, QuantConfig(8, 8))
    y = reference.predict(graph, x_test)
    stages.append(("pruned, 8-bit fixed point (integer reference)", float(np.mean(y.argmax(1) == data.y_test)), 0.8))
    with tempfile.TemporaryDirectory() as tmp:
        out = write_export(graph, args.out or Path(tmp) / "cnn", x_test, ExportOptions(), force=True)
        report = json.loads((out / "report.json").read_text())

    print("| stage | accuracy |\n|---|---:|")
    for stage, acc, _ in stages:
        print(f"| {stage} | {acc * 100:.2f} % |")
    print(f"\nbit-exact: {report['bit_exact']} on {report['vectors']} test vectors "
          f"({report['mismatches']} mismatching outputs, host C against the integer reference)\n")
    print("| layer | kind | format | nonzero / total | weight B | dense B | csr B | MACs nonzero / all |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in report["layers"]:
        if r["weighted"]:
            print(f"| {r['name']} | {r['kind']} | {r['format']} | {r['nonzero_weights']} / {r['total_weights']} | "
                  f"{r['weight_bytes']} | {r['dense_weight_bytes']} | {r['csr_weight_bytes']} | "
                  f"{r['macs_sparse']} / {r['macs']} |")
    print(f"| total | | | {report['nonzero_weights']} / {report['total_weights']} | {report['weight_bytes']} | "
          f"{report['dense_weight_bytes']} | {report['csr_weight_bytes']} | {report['macs_sparse']} / {report['macs']} |")
    print(f"\nflash {report['flash_bytes']} B, RAM {report['ram_bytes']} B ({report['size_measured_with']})")


if __name__ == "__main__":
    main()
