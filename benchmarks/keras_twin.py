"""A Keras 3 twin of a Keras 2 model (architecture JSON + HDF5), to serve as the float oracle.

Keras 3 cannot read Keras 2's JSON, so the twin is built layer by layer from the JSON
and its weights are set from the HDF5 file by layer name. Keras computes the twin's
outputs with its own kernels; hwprune's reader is not involved.
"""

from __future__ import annotations

import json
import os

import h5py

os.environ.setdefault("KERAS_BACKEND", "torch")


def keras_twin(json_path, weights_path):
    import keras

    L = keras.layers
    top = json.loads(open(json_path).read())
    config = top["config"]
    entries = config if isinstance(config, list) else config["layers"]
    first = entries[0]["config"]
    shape = first.get("batch_input_shape") or first.get("batch_shape")
    layers = [keras.Input(tuple(shape[1:]))]
    for entry in entries:
        c, kind = entry["config"], entry["class_name"]
        common = {"name": c["name"]}
        if kind == "InputLayer":
            continue
        if kind == "Dense":
            layers.append(L.Dense(c["units"], activation=c["activation"], use_bias=c["use_bias"], **common))
        elif kind in ("Conv1D", "Conv2D"):
            layers.append(getattr(L, kind)(c["filters"], c["kernel_size"], strides=c["strides"], padding=c["padding"],
                                           activation=c["activation"], use_bias=c["use_bias"], **common))
        elif kind == "Flatten":
            layers.append(L.Flatten(**common))
        elif kind == "Dropout":
            layers.append(L.Dropout(c["rate"], **common))
        elif kind == "Activation":
            layers.append(L.Activation(c["activation"], **common))
        else:
            raise ValueError(f"keras_twin: no rule for {kind}")
    model = keras.Sequential(layers)
    with h5py.File(weights_path, "r") as f:
        for layer in model.layers:
            if layer.weights:
                group = f[layer.name][layer.name]
                layer.set_weights([group["kernel:0"][()], group["bias:0"][()]])
    return model
