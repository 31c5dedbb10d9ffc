"""rule4ml's learned prediction of hls4ml resources for the jet tagger, printed as JSON.

rule4ml (pip, 0.2.0) pulls in TensorFlow, which must never enter hwprune's environment, so
this script runs under a venv of its own and imports nothing from hwprune:

    python3 -m venv /work/venv-rule4ml && /work/venv-rule4ml/bin/pip install rule4ml
    /work/venv-rule4ml/bin/python benchmarks/rule4ml_compare.py [--models DIR] [--out FILE]

The 16-64-32-32-5 tagger is rebuilt as a Keras model from the layer list in
KERAS_3layer.json (a Keras 2 file that Keras 3 does not load as it is) and its HDF5 weights
(dense, and the example repository's 70 % and 95 % pruned files). rule4ml is asked for the
configuration nearest to Fahim et al. 2021 Table 1 (VU9P, hls4ml 0.5.0, Vivado HLS 2019.2,
ap_fixed<16,6>, reuse 1, Latency) that its default (v2, GNN) predictors were trained on:
board alveo-u200 (xcu200, the VU9P die), Latency, ap_fixed<16,6>, reuse 1, hls4ml 0.8.1 (the
oldest it knows; 1.1.0 beside it), Vivado 2019.2; also ap_fixed<14,6> and the other boards.
rule4ml's features are the layer shapes, parameter counts (zeros included), operation
counts, precision, reuse and board; no weight value enters, so the pruned files must predict
exactly what the dense one does (the script checks it: `weights_change_prediction`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WEIGHT_FILES = {"dense": "KERAS_3layer_weights.h5",
                "70 % file": "KERAS_3layer_70pruned_retrained_weights.h5",
                "95 % file": "KERAS_3layer_95pruned_retrained_weights.h5"}
CONFIGS = [
    # The nearest to Fahim et al.'s set-up, then the other boards as a spread.
    {"board": "alveo-u200", "model": {"strategy": "latency", "precision": "ap_fixed<16, 6>", "reuse_factor": 1}},
    {"board": "alveo-u200", "model": {"strategy": "latency", "precision": "ap_fixed<14, 6>", "reuse_factor": 1}},
    {"board": "alveo-u250", "model": {"strategy": "latency", "precision": "ap_fixed<16, 6>", "reuse_factor": 1}},
    {"board": "zcu102", "model": {"strategy": "latency", "precision": "ap_fixed<16, 6>", "reuse_factor": 1}},
]
# 0.8.1 is the oldest hls4ml rule4ml was trained on (Fahim et al. used 0.5.0); 1.1.0 shows
# how much the version alone moves the prediction.
HLS4ML_VERSIONS, VIVADO_VERSION = ["0.8.1", "1.1.0"], "2019.2"
TARGETS = ("BRAM", "DSP", "FF", "LUT", "CYCLES", "INTERVAL")


def build_model(json_file: Path, weights_file: Path, name: str):
    """The Keras model the JSON describes (Dense layers with their activations), with the
    HDF5 file's kernels and biases."""
    import h5py
    import keras
    import numpy as np

    spec = json.loads(json_file.read_text())["config"]["layers"]
    inputs = keras.Input(shape=tuple(spec[0]["config"]["batch_input_shape"][1:]))
    x = inputs
    dense = []
    for layer in spec[1:]:
        if layer["class_name"] != "Dense":
            raise ValueError(f"{json_file}: layer {layer['name']!r} is {layer['class_name']}, only Dense is rebuilt")
        d = keras.layers.Dense(layer["config"]["units"], activation=layer["config"]["activation"], name=layer["name"])
        x = d(x)
        dense.append(d)
    model = keras.Model(inputs, x, name=name)
    model.build((None, *inputs.shape[1:]))  # rule4ml reads the input shape the build records
    with h5py.File(weights_file, "r") as h5:
        for d in dense:
            group = h5[d.name][d.name]
            d.set_weights([np.asarray(group["kernel:0"]), np.asarray(group["bias:0"])])
    nonzero = int(sum(np.count_nonzero(d.get_weights()[0]) for d in dense))
    return model, nonzero


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("/work/shared/models"))
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)

    # torch (rule4ml's GNN predictors) before TensorFlow (its model parser): the other way
    # round, triton's native module segfaults on import (torch 2.14.1, tensorflow 2.21.0).
    import torch  # noqa: F401
    import torch_geometric  # noqa: F401

    import rule4ml
    from rule4ml.models.wrappers import MultiModelWrapper

    estimator = MultiModelWrapper()
    estimator.load_default_models()
    rows = []
    for label, file in WEIGHT_FILES.items():
        model, nonzero = build_model(args.models / "KERAS_3layer.json", args.models / file, label)
        df = estimator.predict(model, hls_configs=[dict(c, model=dict(c["model"])) for c in CONFIGS],
                               hls4ml_versions=HLS4ML_VERSIONS, vivado_versions=VIVADO_VERSION, round_digits=1)
        for rec in df.to_dict("records"):
            rows.append({"model": label, "weights": file, "nonzero": nonzero, "board": str(rec["Board"]),
                         "strategy": rec["Strategy"], "precision": str(rec["Precision"]),
                         "reuse_factor": int(rec["Reuse Factor"]), "hls4ml_version": rec["HLS4ML Version"],
                         "vivado_version": rec["Vivado Version"],
                         **{t.lower(): float(rec[t]) for t in TARGETS if t in rec}})
    # rule4ml sees no weight values: a pruned file predicting differently would mean it does.
    by_config = {}
    for r in rows:
        key = (r["board"], r["precision"], r["hls4ml_version"])
        figures = tuple(r.get(t.lower()) for t in TARGETS)
        by_config.setdefault(key, set()).add(figures)
    result = {"rule4ml_version": getattr(rule4ml, "__version__", "unknown"), "predictor": "v2 gnn (default)",
              "weights_change_prediction": any(len(v) > 1 for v in by_config.values()), "rows": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
