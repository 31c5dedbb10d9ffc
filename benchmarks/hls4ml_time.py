"""Time to a C-simulated hls4ml project of the jet tagger: hwprune against hls4ml's own flow.

    python benchmarks/hls4ml_time.py [--reps 1] [--vectors 1000]

hwprune: read the Keras 2 JSON + HDF5, calibrate, write the export folder (graph, C,
hls4ml project, test vectors), compile the project with g++ and run C simulation on the
vectors, compared bit for bit with the reference (plus the host C check and the report).
hls4ml: ``config_from_keras_model(granularity='name')``, ``convert_from_keras_model``,
``compile()`` (write + g++) and ``predict`` on the same vectors, from a Keras 3 model
already in memory. Both compile from scratch (hwprune's build cache is a fresh folder
per repetition). Times are wall-clock in this run, alternating the two flows; the ratio
is what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "torch")

from benchmarks.keras_twin import keras_twin  # noqa: E402

MODELS_DIR = Path(os.environ.get("HWPRUNE_MODELS", "/work/shared/models"))
ARCH, WEIGHTS = MODELS_DIR / "KERAS_3layer.json", MODELS_DIR / "KERAS_3layer_weights.h5"


def hwprune_flow(x: np.ndarray, work: Path) -> float:
    from hwprune.hls4ml_options import HlsOptions
    from hwprune.pipeline import ExportOptions, export_model, load_model

    os.environ["HWPRUNE_CACHE_DIR"] = str(work / "cache")
    start = time.perf_counter()
    graph = load_model(ARCH, weights=WEIGHTS)
    out = export_model(graph, work / "hwprune", x, ExportOptions(weight_bits=16, activation_bits=16),
                       backends=(HlsOptions(),), source=str(ARCH))
    elapsed = time.perf_counter() - start
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["engines"]["hls4ml"]["bit_exact"], report["engines"]["hls4ml"]
    return elapsed


def hls4ml_flow(model, x: np.ndarray, work: Path) -> float:
    import hls4ml

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        config = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
        hls_model = hls4ml.converters.convert_from_keras_model(
            model, hls_config=config, output_dir=str(work / "hls4ml"), backend="Vitis", io_type="io_parallel")
        hls_model.compile()
        hls_model.predict(np.ascontiguousarray(x))
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--vectors", type=int, default=1000)
    args = parser.parse_args(argv)
    x = np.random.default_rng(0).standard_normal((args.vectors, 16))
    model = keras_twin(ARCH, WEIGHTS)
    ours, theirs = [], []
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory(prefix="hwprune-time-") as tmp:
            ours.append(hwprune_flow(x, Path(tmp)))
        with tempfile.TemporaryDirectory(prefix="hls4ml-time-") as tmp:
            theirs.append(hls4ml_flow(model, x, Path(tmp)))
        print(f"rep {rep}: hwprune {ours[-1]:.1f} s, hls4ml {theirs[-1]:.1f} s", file=sys.stderr)
    a, b = min(ours), min(theirs)
    print(f"{'flow':<48} {'best s':>8}")
    print(f"{'hwprune export + C simulation (bit-exact check)':<48} {a:>8.1f}")
    print(f"{'hls4ml convert + write + compile + predict':<48} {b:>8.1f}")
    print(f"{'ratio hwprune / hls4ml':<48} {a / b:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
