"""Float torch models exported with ``--quant tflite-int8``, dense and pruned; prints a table.

    python -m benchmarks.quant_int8 [--vectors 2] [--target stm32l4r5]

An MLP 64-64-32-10 and a CNN (Conv2d(1, 8, 3, padding=1) - ReLU - MaxPool2d(2) -
Conv2d(8, 16, 3) - ReLU - Flatten - Linear(64, 10)) trained on scikit-learn's digits, each
exported dense, at 90 % one-shot (``--sparsity 0.9``) and 90 % pruned then fine-tuned. Per
export: bit-exactness of TFLite Micro and the host C against the reference (every tensor, the
test set), of the Cortex-M4 firmware (``--vectors`` inputs), test accuracy (calibrated on the training set) float and int8,
weights, their bytes dense (int8) and as the int8 C stores them, the firmware's flash and
cycles per inference, and the .tflite file's size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hwprune import reference
from hwprune.data import load_dataset
from hwprune.frontends.torch import from_torch
from hwprune.harness.mcu_int8 import run_mcu
from hwprune.ir.io import load_graph
from hwprune.pipeline import ExportOptions, export_model
from hwprune.prune import apply_masks, compute_masks, fit, strip_masks
from hwprune.prune.graph import prune_graph
from hwprune.quant.calibrate import float_forward
from hwprune.tempdirs import temp_dir


def _models():
    return {
        "mlp": (lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                (64,)),
        "cnn": (lambda: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3),
                                      nn.ReLU(), nn.Flatten(), nn.Linear(64, 10)), (1, 8, 8)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=2, help="inputs run on the Cortex-M4 emulator")
    parser.add_argument("--target", default="stm32l4r5")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=args.seed)
    print("| model | pruning | engines bit-exact (vectors) | M4 bit-exact | acc float | acc int8 | nonzero / total "
          "| dense int8 weight B | C weight B | flash B | cycles | .tflite B |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = False
    for name, (make, shape) in _models().items():
        x_train, x_test = data.x_train.reshape(-1, *shape), data.x_test.reshape(-1, *shape)
        torch.manual_seed(args.seed)
        model = make()
        fit(model, x_train, data.y_train, epochs=15, lr=3e-3, seed=args.seed)
        model.eval()
        tuned = make()
        tuned.load_state_dict(model.state_dict())
        apply_masks(tuned, compute_masks(tuned, 0.9, method="magnitude", scope="layer"))
        fit(tuned, x_train, data.y_train, epochs=10, lr=2e-3, seed=args.seed + 1)
        tuned = strip_masks(tuned).eval()
        cases = (("dense", model, None), ("90 % one-shot", model, 0.9), ("90 % fine-tuned", tuned, None))
        for label, module, sparsity in cases:
            graph = from_torch(module, shape, name=name)
            with temp_dir("bench") as work:
                options = ExportOptions(quant="tflite-int8", sparsity=sparsity)
                out = export_model(graph, Path(work) / name, x_train, options, source=name)
                report = json.loads((out / "report.json").read_text())
                int8 = load_graph(out)
                x_int = int8.input_t.quantize(graph.from_source(x_test))
                acc_int8 = float(np.mean(reference.run(int8, x_int).argmax(1) == data.y_test))
                run = run_mcu(int8, out / "c", x_int[: args.vectors], Path(work), args.target)
                m4_exact = bool(np.array_equal(run.outputs, reference.run(int8, x_int[: args.vectors])))
                tflite_bytes = (out / "model.tflite").stat().st_size
            pruned = prune_graph(graph, sparsity) if sparsity else graph  # the float model that was quantized
            acc_float = float(np.mean(float_forward(pruned, x_test).argmax(1) == data.y_test))
            failed |= not (report["bit_exact"] and m4_exact)
            print(f"| {name} | {label} | {report['bit_exact']} ({', '.join(report['engines'])}; {report['vectors']}) | "
                  f"{m4_exact} | {acc_float * 100:.1f} % | {acc_int8 * 100:.1f} % | {report['nonzero_weights']} / "
                  f"{report['total_weights']} | {report['weight_bytes']:,} | {report['c_weight_bytes']:,} | "
                  f"{run.flash_bytes:,} | {run.cycles:,.0f} | {tflite_bytes:,} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
