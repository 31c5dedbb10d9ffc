"""Graph networks end to end, from three frontends to four engines: ResNet-8 (MLPerf Tiny),
a MobileNetV2 block stack (0.35 width, 96x96) and a concatenation network, each built in
torch (saved with torch.export as .pt2, and exported to ONNX by torch) and in Keras 3
(functional, torch backend, saved as .keras).

    python -m benchmarks.graph_engines [--models resnet8,mobilenetv2,concat] [--bits 8,16]
        [--frontends pt2,onnx,keras] [--vectors 2] [--io-type auto|parallel|stream]
        [--no-hls4ml] [--no-mcu] [--out DIR]

For each model file: the float graph hwprune reads against the framework's own outputs
(torch, onnxruntime, Keras predict; max absolute difference), then per width two exports,
each verified as ``hwprune export`` does: one for the Cortex-M4 target stm32l4r5 (integer
reference, host C, the firmware in the emulator; cycles per inference) and one with the
hls4ml backend (reference, host C, hls4ml's C simulation). Export seconds include that
verification. The arena columns are the C backend's liveness plan against the most bytes
live at one step (no plan is smaller) and against a plan that never reuses memory.
Weights are random and BatchNorm statistics are set away from 0 and 1: the figures measure
exactness, memory and speed, not accuracy. hls4ml's C simulation is g++ over the whole
project; the hls4ml export takes the backend's default I/O type (``--io-type auto``:
io_stream for these networks at full size, whose io_parallel im2col code g++ compiles for
tens of minutes; ``backends/hls4ml/iotype.py``), and the "hls4ml io" column names it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.graph_models import (
    TorchConcatNet, TorchMobileNetV2, TorchResNet8, keras_concat_net, keras_mobilenet_v2, keras_resnet8,
    randomize_batchnorm, randomize_keras_batchnorm, save_model_files,
)
from hwprune.backends.hls4ml.iotype import resolve_io_type
from hwprune.hls4ml_options import HlsOptions
from hwprune.ir.graph import outputs_are_logits
from hwprune.pipeline import ExportOptions, load_model, quantize_graph, write_export
from hwprune.quant.calibrate import float_forward

MCU_TARGET = "stm32l4r5"
ENGINES = ("reference", "host", "mcu", "hls4ml")

#: name -> (torch model, Keras model, input size)
MODELS = {
    "resnet8": (lambda a: TorchResNet8(a.width, a.size or 32), lambda a: keras_resnet8(a.width, a.size or 32), 32),
    "mobilenetv2": (lambda a: TorchMobileNetV2(a.alpha), lambda a: keras_mobilenet_v2(a.alpha, a.size or 96), 96),
    "concat": (lambda a: TorchConcatNet(), lambda a: keras_concat_net(size=a.size or 32), 32),
}


def float_model(graph, x) -> np.ndarray:
    """The float graph's outputs as the framework computes them: engines stop at the logits
    of a final Softmax (a marker in the IR), the frameworks do not."""
    y = float_forward(graph, x)
    if outputs_are_logits(graph):
        y = np.exp(y - y.max(axis=-1, keepdims=True))
        y = y / y.sum(axis=-1, keepdims=True)
    return y


def export_and_verify(graph, path: Path, out: Path, calibration, vectors, bits: int, target=None, hls=None) -> dict:
    """One ``hwprune export``: quantize, write, verify; the report plus the seconds taken."""
    options = ExportOptions(weight_bits=bits, activation_bits=bits, target=target)
    start = time.perf_counter()
    quantized = quantize_graph(graph, calibration, options)
    exported = write_export(quantized, out, vectors, options, source=str(path), float_graph=graph,
                            backends=(hls,) if hls is not None else ())
    report = dict(exported.report)
    report["seconds"] = time.perf_counter() - start
    report["c_plan"] = json.loads((out / "c" / "export.json").read_text())
    return report


def engine_cell(reports: list[dict], engine: str) -> str:
    runs = [r["engines"][engine] for r in reports if r["engines"].get(engine, {}).get("available")]
    if not runs:
        return "-"
    good = sum(bool(r["bit_exact"]) for r in runs)
    return "pass" if good == len(runs) else f"FAIL ({good}/{len(runs)} exports)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet8,mobilenetv2,concat")
    p.add_argument("--frontends", default="pt2,onnx,keras")
    p.add_argument("--bits", default="8,16")
    p.add_argument("--vectors", type=int, default=2, help="test vectors per export (every engine runs them)")
    p.add_argument("--calibration", type=int, default=32, help="calibration images")
    p.add_argument("--width", type=float, default=1.0, help="ResNet-8's filter multiplier")
    p.add_argument("--alpha", type=float, default=0.35, help="MobileNetV2's width multiplier")
    p.add_argument("--size", type=int, default=0, help="input height and width (default: the model's own)")
    p.add_argument("--io-type", default="auto", choices=["auto", "parallel", "stream"], help="hls4ml's I/O type")
    p.add_argument("--no-hls4ml", action="store_true")
    p.add_argument("--no-mcu", action="store_true")
    p.add_argument("--out", type=Path, help="keep the model files and exports here")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix="graph_engines-"))
    root.mkdir(parents=True, exist_ok=True)
    print("| model | frontend | bits | float max abs diff | export s (M4) | export s (hls4ml) | hls4ml io | reference | "
          "host C | M4 | hls4ml csim | M4 cycles/inf | arena B | live bound B | never-reuse B | arena / bound |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    failures = 0
    for name in args.models.split(","):
        make_torch, make_keras, default_size = MODELS[name]
        size = args.size or default_size
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, size=(args.calibration, 3, size, size)).astype(np.float32)
        torch_model = randomize_batchnorm(make_torch(args))
        keras_model = randomize_keras_batchnorm(make_keras(args))
        files = save_model_files(torch_model, keras_model, root, name, images)
        for frontend in args.frontends.split(","):
            path, x, expected = files[frontend]
            graph = load_model(path)
            diff = float(np.abs(float_model(graph, x) - expected).max())
            for bits in (int(b) for b in args.bits.split(",")):
                reports, cells = [], {}
                vectors = x[: args.vectors]
                if not args.no_mcu:
                    reports.append(export_and_verify(graph, path, root / f"{name}_{frontend}_{bits}_m4", x, vectors,
                                                     bits, target=MCU_TARGET))
                    cells["m4_s"] = f"{reports[-1]['seconds']:.1f}"
                    cells["cycles"] = f"{reports[-1]['mcu']['cycles']:,.0f}"
                if not args.no_hls4ml:
                    hls = HlsOptions(io_type=args.io_type)
                    reports.append(export_and_verify(graph, path, root / f"{name}_{frontend}_{bits}_hls4ml", x,
                                                     vectors, bits, hls=hls))
                    cells["hls_s"] = f"{reports[-1]['seconds']:.1f}"
                    cells["io"] = resolve_io_type(graph, hls).io_type
                if not reports:
                    reports.append(export_and_verify(graph, path, root / f"{name}_{frontend}_{bits}_host", x,
                                                     vectors, bits))
                plan = reports[0]["c_plan"]
                engines = [engine_cell(reports, e) for e in ENGINES]
                failures += sum(e.startswith("FAIL") for e in engines) + (diff > 1e-5)
                print(f"| {name} | {frontend} | {bits} | {diff:.1e} | {cells.get('m4_s', '-')} | "
                      f"{cells.get('hls_s', '-')} | {cells.get('io', '-')} | {' | '.join(engines)} | {cells.get('cycles', '-')} | "
                      f"{plan['arena_bytes']:,} | {plan['arena_live_bound_bytes']:,} | "
                      f"{plan['arena_never_reuse_bytes']:,} | "
                      f"{plan['arena_bytes'] / plan['arena_live_bound_bytes']:.3f} |", flush=True)
    print(f"\nmodel files and exports in {root}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
