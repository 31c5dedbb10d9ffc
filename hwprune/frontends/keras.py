"""Keras models -> float IR graphs, with h5py alone (TensorFlow is never imported).

Four ways in, one mapping:

- Keras 2: the architecture JSON (``model.to_json()``) and the HDF5 weights
  (``model.save_weights``): ``from_keras_json(json_path, weights_path)``;
- a whole model in one HDF5 file (``model.save('x.h5')``, Keras 2, or Keras 3's legacy
  format): the architecture is the file's ``model_config`` attribute (JSON, read as data),
  the weights its ``model_weights`` group: ``from_keras_h5(path)``;
- Keras 3: a ``.keras`` file (a zip of ``config.json`` and ``model.weights.h5``):
  ``from_keras_file(path)``;
- a live model object (tf.keras or Keras 3): ``from_keras_model(model)`` reads only its
  ``get_config()`` and ``get_weights()``.

Supported layers: InputLayer, Dense, Conv1D/2D, DepthwiseConv2D, Activation (relu, relu6,
softmax, linear, sigmoid, tanh), ReLU (with max_value: a Clip), LeakyReLU, PReLU
(``keras_activations``), BatchNormalization (folded into a neighbouring Dense or Conv,
else its own per-channel layer), Flatten, MaxPooling and AveragePooling
1D/2D, Dropout (dropped at inference), Add, Multiply, Concatenate; QKeras's QDense, QConv1D,
QConv2D and QActivation, read quantized as QKeras computes them (``keras_qkeras``); HGQ's proxy
models (``FixedPointQuantizer``, per-element types: ``keras_hgq``). Sequential
models and functional ones (each layer's ``inbound_nodes`` name the layers it reads, Keras 2's
``[name, node, tensor, kwargs]`` lists as Keras 3's ``keras_history``) become IR graphs
with the same branches; one input, each layer called once. Anything else is an error
naming the layer.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from hwprune.errors import HwpruneError, ModelError, ShapeError, UnsupportedLayerError, WeightError
from hwprune.frontends import keras_activations, keras_hgq, keras_layers, keras_qkeras  # noqa: F401 (converters)
from hwprune.frontends.keras_config import input_shape, layer_sources, model_config, outputs
from hwprune.frontends.safe_h5 import open_h5, read_array
from hwprune.ir.graph import Graph, is_c_identifier
from hwprune.limits import check_activations, check_declared
from hwprune.quant.exact import complete_types, declares_types

SUPPORTED = tuple(keras_layers.CONVERTERS)


@dataclass(frozen=True)
class KerasLayer:
    class_name: str
    name: str
    config: dict
    weights: tuple[np.ndarray, ...]
    sources: tuple[str, ...] = ()  # the Keras layers it reads (none: the model's input)


def _c_name(name: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name)) or "model"
    return name if is_c_identifier(name) else f"m_{name}"


#: What a configuration of the wrong shape raises in the code that reads it (a dict where a list
#: was expected, a missing key, a string where a number was): the file's fault, said in one line.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def _malformed(where: str, exc: BaseException) -> ModelError:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return ModelError(f"{where}: malformed Keras configuration ({type(exc).__name__}: {text})")


def layers_from_config(top: dict, weights_of: Callable[[str, int], tuple[np.ndarray, ...]], where: str):
    """The model's name, input shape, layers with their weights, and output layers (none:
    the last layer)."""
    try:
        return _layers_from_config(top, weights_of, where)
    except HwpruneError:
        raise
    except MALFORMED as exc:
        raise _malformed(where, exc) from None


def _layers_from_config(top, weights_of, where: str):
    name, entries = model_config(top, where)
    sources = layer_sources(entries, where)
    shape = input_shape(entries, where)
    layers = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
            raise ModelError(f"{where}: layer {index} is not a Keras layer entry")
        config = entry.get("config", {})
        layer_name = str(config.get("name", entry.get("name", f"layer{index}")))
        layers.append(KerasLayer(entry["class_name"], layer_name, config, weights_of(layer_name, index),
                                 sources[index]))
    return name, shape, layers, outputs(top, where)


def _in_order(layers: list[KerasLayer], where: str) -> list[KerasLayer]:
    """The layers in an order where each comes after the layers it reads (Keras writes them so)."""
    known = {layer.name for layer in layers}
    for layer in layers:
        unknown = [s for s in layer.sources if s not in known]
        if unknown:
            raise ModelError(f"{where}: layer {layer.name!r} reads {unknown}, which are not layers of the model")
    done: set[str] = set()
    ordered: list[KerasLayer] = []
    pending = list(layers)
    while pending:
        ready = [layer for layer in pending if all(s in done for s in layer.sources)]
        if not ready:
            raise ModelError(f"{where}: layers {[l.name for l in pending]} read each other in a cycle")
        for layer in ready:
            ordered.append(layer)
            done.add(layer.name)
        pending = [layer for layer in pending if layer.name not in done]
    return ordered


def graph_from_layers(name: str, input_shape: tuple[int, ...], layers: list[KerasLayer], where: str,
                      outputs: tuple[str, ...] = ()) -> Graph:
    readers: dict[str, int] = {}
    for layer in layers:
        for source in layer.sources:
            if not isinstance(source, str):  # a malformed inbound_nodes entry
                raise ModelError(f"{where}: layer {layer.name!r} reads {source!r}, which is not a layer name")
            readers[source] = readers.get(source, 0) + 1
    for output in outputs:
        readers[output] = readers.get(output, 0) + 1
    builder = keras_layers.Builder(input_shape, readers)
    for layer in _in_order(layers, where):
        convert = keras_layers.CONVERTERS.get(layer.class_name)
        if convert is None:
            raise UnsupportedLayerError(
                f"{where}: layer {layer.name!r} ({layer.class_name}) is not supported; supported layers are "
                f"{', '.join(SUPPORTED)}"
            )
        try:
            builder.begin(layer.name, layer.sources)
            convert(builder, layer.name, _c_name(layer.name), layer.config, layer.weights)
            builder.finish(layer.name)
        except HwpruneError as exc:
            if type(exc) in (ShapeError, ModelError) and layer.name not in str(exc):
                raise type(exc)(f"{where}: layer {layer.name!r} ({layer.class_name}): {exc}") from None
            raise
        except MALFORMED as exc:
            raise _malformed(f"{where}: layer {layer.name!r} ({layer.class_name})", exc) from None
    graph = builder.graph(_c_name(name), where, outputs)
    check_activations(graph, where)
    if declares_types(graph):  # a quantized model (QKeras, HGQ): its own types, nothing calibrated
        # an HGQ proxy stores its weights quantized, each on its own grid: the types that hold them
        hgq = any(layer.class_name == "FixedPointQuantizer" for layer in layers)
        try:
            graph = complete_types(graph, exact_weights=hgq)
        except HwpruneError as exc:
            raise type(exc)(f"{where}: {exc}") from None
    return graph


# -- Keras 2: JSON + HDF5 ----------------------------------------------------------------------

def _keras2_weights(h5file, where: str) -> Callable[[str, int], tuple[np.ndarray, ...]]:
    root = h5file["model_weights"] if "model_weights" in h5file else h5file  # save() vs save_weights()

    def weights_of(layer_name: str, index: int) -> tuple[np.ndarray, ...]:
        if layer_name not in root:
            return ()
        group = root[layer_name]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
        arrays = []
        for n in names:
            if n not in group:
                raise WeightError(f"{where}: layer {layer_name!r}: weight {n!r} is listed in weight_names but missing")
            arrays.append(read_array(group[n], f"{where}: layer {layer_name!r}: weight {n!r}"))
        return tuple(arrays)

    return weights_of


def from_keras_json(json_path, weights_path, name: Optional[str] = None) -> Graph:
    """A Keras 2 architecture JSON file and its HDF5 weights; the model is named after the
    file unless ``name`` is given (Keras' own names, ``model_1``, say little)."""
    json_path, weights_path = Path(json_path), Path(weights_path)
    try:
        top = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{json_path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{json_path}: not a Keras architecture JSON file ({exc})") from None
    if weights_path.is_dir():
        raise ModelError(f"{weights_path}: is a folder; --weights takes an HDF5 weights file (.h5)")
    if not weights_path.is_file():
        raise ModelError(f"{weights_path}: no such weights file")
    with open_h5(weights_path, str(weights_path), "not an HDF5 weights file") as h5file:
        _, shape, layers, outputs = layers_from_config(top, _keras2_weights(h5file, str(weights_path)),
                                                       str(json_path))
    return graph_from_layers(name or json_path.stem, shape, layers, str(json_path), outputs)


def from_keras_h5(path, name: Optional[str] = None) -> Graph:
    """A whole Keras model in one HDF5 file (``model.save('x.h5')``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    with open_h5(path, str(path), "not an HDF5 file") as h5file:  # links, external storage, sizes checked
        config = h5file.attrs.get("model_config")
        if config is None:
            raise ModelError(f"{path}: holds weights only (no model_config attribute, as model.save_weights writes); "
                             f"pass the architecture JSON as the model and this file as --weights")
        try:
            top = json.loads(config.decode() if isinstance(config, bytes) else str(config))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: the model_config attribute is not JSON ({exc})") from None
        _, shape, layers, outputs = layers_from_config(top, _keras2_weights(h5file, str(path)), str(path))
    return graph_from_layers(name or path.stem, shape, layers, str(path), outputs)


# -- Keras 3: .keras --------------------------------------------------------------------------

def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_keys(entries: list) -> list[str]:
    """Where each layer's variables live in ``model.weights.h5``: Keras 3 names the groups
    after the layer's class, not its name (``dense``, ``dense_1``, ... in model order)."""
    seen: dict[str, int] = {}
    keys = []
    for entry in entries:
        base = _snake_case(str(entry.get("class_name", "") if isinstance(entry, dict) else ""))
        count = seen.get(base, 0)
        seen[base] = count + 1
        keys.append(base if count == 0 else f"{base}_{count}")
    return keys


def from_keras_file(path, name: Optional[str] = None) -> Graph:
    """A Keras 3 ``.keras`` file: ``config.json`` + ``model.weights.h5`` in a zip."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            for member in ("config.json", "model.weights.h5"):  # a zip declares sizes: check before inflating
                check_declared(archive.getinfo(member).file_size, f"{path}: {member}")
            top = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a Keras 3 .keras file ({type(exc).__name__}: {exc})") from None

    with open_h5(io.BytesIO(weights), f"{path}: model.weights.h5", "not readable HDF5") as h5file:
        layers_group = h5file["layers"] if "layers" in h5file else None

        _, entries = model_config(top, str(path))
        keys = _keras3_keys(entries)

        def weights_of(layer_name: str, index: int) -> tuple[np.ndarray, ...]:
            key = keys[index]
            if layers_group is None or key not in layers_group or "vars" not in layers_group[key]:
                return ()
            variables = layers_group[key]["vars"]
            return tuple(read_array(variables[str(i)], f"{path}: layer {layer_name!r}: variable {i}")
                         for i in range(len(variables)))

        _, shape, layers, outputs = layers_from_config(top, weights_of, str(path))
    return graph_from_layers(name or path.stem, shape, layers, str(path), outputs)


# -- a live model ------------------------------------------------------------------------------

def from_keras_model(model, name: Optional[str] = None) -> Graph:
    """A live tf.keras or Keras 3 model, read through ``get_config()`` and ``get_weights()``
    only: the flat weight list is dealt out to the layers in order, each taking as many
    arrays as its configuration says it holds."""
    where = f"Keras model {getattr(model, 'name', '')!r}"
    try:
        top = model.get_config()
        flat = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
    except AttributeError:
        raise ModelError(f"{type(model).__name__} is not a Keras model (no get_config/get_weights)") from None
    if "layers" not in top and hasattr(model, "layers"):
        top = {"name": top.get("name", "model"), "layers": [
            {"class_name": type(layer).__name__, "config": layer.get_config()} for layer in model.layers]}
    cursor = [0]

    def weights_of(layer_name: str, index: int) -> tuple[np.ndarray, ...]:
        _, entries = model_config(top, where)
        count = keras_layers.weight_count(entries[index]["class_name"], entries[index].get("config", {}))
        start = cursor[0]
        cursor[0] += count
        if cursor[0] > len(flat):
            raise WeightError(f"{where}: layer {layer_name!r} needs {count} weight arrays, only "
                              f"{len(flat) - start} are left")
        return tuple(flat[start:cursor[0]])

    model_name, shape, layers, outputs = layers_from_config(top, weights_of, where)
    if cursor[0] != len(flat):
        raise WeightError(f"{where}: {len(flat) - cursor[0]} weight arrays are left over after the last layer")
    return graph_from_layers(name or model_name, shape, layers, where, outputs)


def load_keras(path, weights=None) -> Graph:
    """``MODEL.json`` with ``weights`` (Keras 2), ``MODEL.h5`` (a whole model) or ``MODEL.keras``
    (Keras 3)."""
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        if weights is not None:
            raise ModelError(f"{path}: a whole-model .h5 file holds its weights; drop --weights")
        return from_keras_h5(path)
    if path.suffix == ".keras":
        if weights is not None:
            raise ModelError(f"{path}: a .keras file holds its weights; drop --weights")
        return from_keras_file(path)
    if path.suffix == ".json":
        if weights is None:
            raise ModelError(f"{path}: a Keras architecture JSON file needs its HDF5 weights: pass --weights W.h5")
        return from_keras_json(path, weights)
    raise ModelError(f"{path}: --weights applies to a Keras architecture .json file only")
