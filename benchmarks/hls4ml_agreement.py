"""hls4ml projects of the shared Keras models: C simulation against the integer reference,
and argmax agreement with Keras float, on 1,000 N(0,1) inputs each.

    python benchmarks/hls4ml_agreement.py [--bits 16] [--vectors 1000] [--io-type parallel|stream] [--json OUT.json]

Per model (jet tagger dense / 70 % / 95 % pruned-retrained weights, Conv1D, Conv2D):
hwprune reads the Keras 2 files, calibrates its fixed-point types on the 1,000 inputs
(one width for weights and activations, every layer's types computed, nothing tuned by
hand), writes an hls4ml project (Latency strategy; for the jet tagger also Resource with
compressed weights), compiles it with g++ and runs C simulation on the same 1,000 inputs.
Printed: C simulation elements differing from the reference (0 = bit-exact), argmax
agreement of the reference with Keras 3's own float predict (torch backend), and weight
memory of the Resource project against dense storage. The reference's agreement at other
widths is printed too (the reference equals C simulation, shown at --bits).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "torch")

from benchmarks.keras_twin import keras_twin  # noqa: E402
from hwprune import reference  # noqa: E402
from hwprune.frontends.keras import from_keras_json  # noqa: E402
from hwprune.hls4ml_options import HlsOptions  # noqa: E402
from hwprune.pipeline import ExportOptions, write_export  # noqa: E402
from hwprune.quant.calibrate import QuantConfig, calibrate  # noqa: E402

MODELS_DIR = Path(os.environ.get("HWPRUNE_MODELS", "/work/shared/models"))
MODELS = {
    "jet dense": ("KERAS_3layer.json", "KERAS_3layer_weights.h5"),
    "jet 70 %": ("KERAS_3layer.json", "KERAS_3layer_70pruned_retrained_weights.h5"),
    "jet 95 %": ("KERAS_3layer.json", "KERAS_3layer_95pruned_retrained_weights.h5"),
    "conv1d": ("KERAS_conv1d_small.json", "KERAS_conv1d_small_weights.h5"),
    "conv2d": ("KERAS_conv2d_model.json", "KERAS_conv2d_model_weights.h5"),
}


def run_model(label: str, bits: int, vectors: int, work: Path, other_bits=(8, 12), io_type="parallel") -> dict:
    arch, weights = (MODELS_DIR / f for f in MODELS[label])
    graph = from_keras_json(arch, weights)
    x = np.random.default_rng(0).standard_normal((vectors, *graph.input_shape))
    keras_class = keras_twin(arch, weights).predict(x, verbose=0).argmax(axis=1)
    row = {"model": label, "weights": weights.name, "vectors": vectors, "bits": bits, "io_type": io_type}
    for b in (*other_bits, bits):
        q = calibrate(graph, x, QuantConfig(b, b))
        row[f"agreement_{b}"] = int((reference.predict(q, x).argmax(axis=1) == keras_class).sum())
    strategies = {"latency": HlsOptions(io_type=io_type)}
    if graph.layers[0].kind == "dense":
        strategies["resource"] = HlsOptions(strategy="resource", storage="compressed", io_type=io_type)
    for name, hls in strategies.items():
        out = work / f"{label.replace(' ', '_').replace('%', 'pc')}_{name}"
        write_export(q, out, x, ExportOptions(weight_bits=bits, activation_bits=bits), backends=(hls,), source=str(arch))
        report = json.loads((out / "report.json").read_text())
        engine = report["engines"]["hls4ml"]
        row[f"csim_{name}_vectors"] = report["vectors"]
        row[f"csim_{name}_mismatches"] = engine["mismatches"]
        row[f"csim_{name}_bit_exact"] = engine["bit_exact"]
        if name == "resource":
            row["weight_memory_bits"] = report["weight_memory_bits"]
            row["dense_weight_memory_bits"] = report["dense_weight_memory_bits"]
        else:
            row["multiplications"] = report["hls4ml"]["multiplications"]
            row["multiplications_dense"] = report["hls4ml"]["multiplications_dense"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=16)
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--io-type", choices=["parallel", "stream"], default="parallel",
                        help="hls4ml I/O of every project (the export's --io-type)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwprune-bench-") as tmp:
        os.environ.setdefault("HWPRUNE_CACHE_DIR", str(Path(tmp) / "cache"))
        for label in args.models:
            rows.append(run_model(label, args.bits, args.vectors, Path(tmp), io_type=args.io_type))
            r = rows[-1]
            print(f"{label}: done", file=sys.stderr)
    b = args.bits
    print(f"{'model':<10} {'csim latency':>14} {'csim resource':>14} {'argmax 8b':>9} {'argmax 12b':>10} "
          f"{'argmax ' + str(b) + 'b':>10} {'mults nz/dense':>15} {'weight memory':>22}")
    for r in rows:
        lat = f"{r['csim_latency_mismatches']} diff/{r['csim_latency_vectors']}"
        res = (f"{r['csim_resource_mismatches']} diff/{r['csim_resource_vectors']}"
               if "csim_resource_vectors" in r else "-")
        mem = (f"{r['weight_memory_bits']}/{r['dense_weight_memory_bits']} = "
               f"{r['weight_memory_bits'] / r['dense_weight_memory_bits']:.2f}x" if "weight_memory_bits" in r else "-")
        print(f"{r['model']:<10} {lat:>14} {res:>14} {r['agreement_8']:>9} {r['agreement_12']:>10} "
              f"{r[f'agreement_{b}']:>10} {str(r['multiplications']) + '/' + str(r['multiplications_dense']):>15} "
              f"{mem:>22}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["csim_latency_bit_exact"] and r.get("csim_resource_bit_exact", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
