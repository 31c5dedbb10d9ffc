"""The int8 reference against TFLite Micro's interpreter and the host C on MLPerf Tiny's models.

For each model: N random int8 inputs over the whole range (seeded), the reference
(``hwprune.reference``), the ``tflm`` engine on the original .tflite and the int8 C
(``backends.c_int8``) compiled for the host, every intermediate tensor compared; prints
mismatching elements per model and engine, and the MAC figures.

    python -m benchmarks.tflm_exact [--vectors 1000] [--models ad01_int8 kws_ref_model vww_96_int8 pretrainedResnet_quant]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.harness.host_int8 import run_host
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.compare import compare
from hwprune.harness.tflm import TflmEngine
from hwprune.pipeline_int8 import dead_channel_macs
from hwprune.tempdirs import temp_dir

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
MODELS = ("ad01_int8", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant")
CHUNK = 50  # vectors per reference call (bounds the im2col memory of VWW)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args(argv)
    print("| model | vectors | layers compared | mismatches tflm | mismatches host C | MACs | MACs on zero weights | "
          "MACs in dead channels | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = False
    for name in args.models:
        path = DATA / f"{name}.tflite"
        graph = read_tflite(path, name).graph
        x = np.random.default_rng(args.seed).integers(-128, 127, size=(args.vectors, *graph.input_shape), endpoint=True)
        start = time.perf_counter()
        engine = TflmEngine(path)
        mismatches, host_mismatches, layers = 0, 0, 0
        with temp_dir("bench") as work:
            write_int8_c(graph, work / "c")
            for lo in range(0, len(x), CHUNK):
                part = x[lo: lo + CHUNK]
                expected = reference.run(graph, part, trace=True)
                for label, trace in (("tflm", engine.run(graph, part).trace), ("host", run_host(graph, work / "c", part, work))):
                    result = compare(expected, trace, label)
                    if not result.bit_exact:
                        print(result.report())
                    if label == "tflm":
                        mismatches += result.mismatches + len(result.problems)
                    else:
                        host_mismatches += result.mismatches + len(result.problems)
                    layers = len(result.layers)
        failed |= mismatches > 0 or host_mismatches > 0
        macs = graph.macs
        print(f"| {name} | {len(x)} | {layers} | {mismatches} | {host_mismatches} | {macs:,} | {(macs - graph.nonzero_macs) / macs:.1%} | "
              f"{dead_channel_macs(graph) / macs:.1%} | {time.perf_counter() - start:.1f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
