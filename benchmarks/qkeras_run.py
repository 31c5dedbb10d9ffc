"""Run a QKeras model in QKeras itself: the oracle of the survey and of ``qkeras_exact``.

Runs under another Python than hwprune's, so it imports neither hwprune nor anything of
this repository: one with TensorFlow 2.15, its Keras 2 and QKeras 0.9 (TensorFlow is never
one of hwprune's dependencies) for Keras 2 files, or one with Keras 3 and ``qkeras-v3``
(installed without its dependencies it runs on Keras 3's torch backend) for QKeras's Keras 3
``.keras`` files, which Keras 2 cannot read. It loads the model with QKeras's custom objects, runs it on the inputs and
writes every layer's output to an ``.npz`` (keys: the Keras layer names, plus ``__output__``
for the model's output and ``__pre_softmax__`` for the input of a final unquantized
Softmax, the last tensor QKeras quantizes).

    PYTHON benchmarks/qkeras_run.py MODEL [--weights W.h5] --inputs X.npy --out Y.npz

MODEL is a Keras 2 architecture ``.json`` (with ``--weights``), a whole-model ``.h5`` or a
``.keras`` file. A configuration with a ``Lambda`` layer is refused: its serialized code
would run. On failure: one line on stderr, exit 2, nothing written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if importlib.util.find_spec("tensorflow") is None:  # qkeras-v3 on Keras 3 defaults to TensorFlow
    os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402


def _config_text(model: str) -> str:
    if model.endswith(".json"):
        with open(model) as f:
            return f.read()
    if model.endswith(".keras"):
        with zipfile.ZipFile(model) as archive:
            return archive.read("config.json").decode()
    import h5py
    with h5py.File(model, "r") as h5:
        config = h5.attrs.get("model_config", b"")
        return config.decode() if isinstance(config, bytes) else str(config)


def _custom_objects() -> dict:
    from qkeras.utils import _add_supported_quantized_objects
    custom: dict = {}
    _add_supported_quantized_objects(custom)
    return custom


def framework() -> str:
    from importlib.metadata import PackageNotFoundError, version

    import keras
    for package in ("qkeras-v3", "QKeras"):
        try:
            return f"{package} {version(package)} on Keras {keras.__version__} ({keras.backend.backend()})"
        except PackageNotFoundError:
            continue
    return f"QKeras on Keras {keras.__version__}"


def load(model: str, weights: str | None):
    """The model in this Python's QKeras: QKeras 0.9 on TensorFlow's Keras 2, or qkeras-v3
    on Keras 3 (which runs on the torch backend where TensorFlow is absent)."""
    if '"Lambda"' in _config_text(model):
        raise ValueError("a Lambda layer (serialized code) is not loaded")
    import keras
    if keras.__version__.startswith("2."):
        import tensorflow as tf

        # QKeras imports tensorflow_model_optimization, which sets TF_USE_LEGACY_KERAS=1:
        # with the tf_keras package installed, a ``tf.keras`` namespace first touched after
        # that loads tf_keras, whose class registry then shadows Keras 2's (QDense becomes
        # an "Unknown layer"). Touching them first binds them to Keras 2, which QKeras uses.
        tf.keras.Model, tf.compat.v1.keras.layers.Layer, tf.compat.v2.keras.Model  # noqa: B018
        custom = _custom_objects()
        if model.endswith(".json"):
            if weights is None:
                raise ValueError("an architecture .json needs --weights")
            with open(model) as f:
                net = tf.keras.models.model_from_json(f.read(), custom_objects=custom)
            net.load_weights(weights)
            return net
        return tf.keras.models.load_model(model, custom_objects=custom, compile=False)
    if not model.endswith(".keras"):
        raise ValueError(f"Keras {keras.__version__} runs QKeras's Keras 3 .keras files; a Keras 2 file needs "
                         "QKeras 0.9 on TensorFlow's Keras 2")
    return keras.saving.load_model(model, custom_objects=_custom_objects(), compile=False, safe_mode=True)


def run(net, x: np.ndarray) -> dict[str, np.ndarray]:
    import keras

    layers = [layer for layer in net.layers if type(layer).__name__ != "InputLayer"]
    probe = keras.Model(net.inputs, [layer.output for layer in layers])
    outputs = probe.predict(x, batch_size=50, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    found = {layer.name: np.asarray(y) for layer, y in zip(layers, outputs)}
    found["__output__"] = np.asarray(net.predict(x, batch_size=50, verbose=0))
    last = layers[-1]
    activation = last.get_config().get("activation")
    if type(last).__name__ in ("Activation", "Softmax") and activation in ("softmax", None) and len(layers) > 1:
        found["__pre_softmax__"] = found[layers[-2].name]
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--weights")
    p.add_argument("--inputs", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        x = np.load(args.inputs, allow_pickle=False).astype(np.float32)
        net = load(args.model, args.weights)
        found = run(net, x)
    except Exception as exc:  # the caller reports the reason in its row
        lines = [line for line in str(exc).splitlines() if line.strip()]
        # Keras wraps a deserialization error: its cause is on the last line
        reason = " ".join(lines[:1] + [line for line in lines[1:] if line.startswith("Exception encountered")])
        print(f"qkeras_run: {args.model}: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 2
    np.savez(args.out, **found)
    print(json.dumps({"framework": framework(), "layers": [k for k in found if not k.startswith("__")]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
