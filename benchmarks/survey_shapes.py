"""One example's input shape as a model file declares it, for a file no framework here runs
(the survey's fallback, and the QKeras oracle's input)."""

from __future__ import annotations

import json
from pathlib import Path


def declared_input_shape(path: Path, architecture: Path | None):
    """One example's input shape as the file declares it (source layout), for a file no
    framework here runs; None when it declares none."""
    if path.suffix == ".onnx":
        import onnx
        model = onnx.load(str(path), load_external_data=False)
        initializers = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:] if inputs else []
        return tuple(dims) if dims and all(d > 0 for d in dims) else None
    from hwprune.pipeline import load_model  # Keras layouts are channels-last, as the IR's
    try:
        graph = load_model(architecture or path, weights=path if architecture else None)
    except Exception:  # a file hwprune refuses: its export below says why
        return keras_config_shape(path, architecture)
    return tuple(graph.input_shape)


def keras_config_shape(path: Path, architecture: Path | None):
    """The first `batch_input_shape` or `batch_shape` of a Keras configuration, without
    its batch size; None when there is none or it has an unknown size."""
    text = architecture.read_text() if architecture is not None else None
    if text is None and path.suffix in (".h5", ".hdf5"):
        import h5py
        with h5py.File(path, "r") as h5:
            config = h5.attrs.get("model_config")
            text = config.decode() if isinstance(config, bytes) else config
    elif text is None and path.suffix == ".keras":
        import zipfile
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json").decode()
    if not text:
        return None
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("batch_input_shape", "batch_shape"):
                if isinstance(node.get(key), list) and not found:
                    found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(text))
    if not found or any(d is None for d in found[0][1:]):
        return None
    return tuple(int(d) for d in found[0][1:])
