"""On-disk format of a graph: ``graph.json`` (structure and types) + ``weights.npz``.

``graph.json``, version 2::

    {"format": "hwprune-graph", "version": 2, "name": "resnet",
     "inputs": [{"name": "input", "shape": [32, 32, 3], "t": "ufixed<8,1,RND,SAT>" | null}],
     "outputs": ["fc"],
     "input_layout": "channels_first" (only for a source model with channels first),
     "layers": [{"kind": "conv2d", "name": "c1", "inputs": ["input"],
                 "weight_t": "fixed<8,1,RND,SAT>", ..., "arrays": ["weight", "bias"]},
                {"kind": "add", "name": "add1", "inputs": ["c2", "c1"], "result_t": "..."}, ...]}

Version 1 (a chain: ``input_shape``/``input_t`` and layers without ``inputs``) is read
as the chain it describes (``Graph.chain``), so older export folders still load.

``weights.npz`` holds each array as ``<layer>.<field>`` in float64; in a quantized graph
the values lie on their type's grid, so they read back bit for bit.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from hwprune.errors import HwpruneError, ModelError
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.layers import LAYER_KINDS, Layer
from hwprune.ir.int8_types import DialectType, parse_type

FORMAT = "hwprune-graph"
VERSION = 2
CHAIN_VERSION = 1  # read only: every layer reads the one before it
GRAPH_FILE = "graph.json"
WEIGHTS_FILE = "weights.npz"


def graph_to_json(graph: Graph) -> dict:
    layers = []
    for layer in graph.layers:
        entry: dict = {"kind": layer.kind, "name": layer.name}
        arrays = []
        for f in fields(layer):
            if f.name == "name":
                continue
            value = getattr(layer, f.name)
            if isinstance(value, np.ndarray):
                arrays.append(f.name)
            elif isinstance(value, DialectType):
                entry[f.name] = str(value)
            elif f.name == "inputs":
                entry[f.name] = list(value)
            else:
                entry[f.name] = value
        if arrays:
            entry["arrays"] = arrays
        layers.append(entry)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "inputs": [{"name": i.name, "shape": list(i.shape), "t": str(i.t) if i.t else None} for i in graph.inputs],
        "outputs": list(graph.outputs),
        "layers": layers,
    }
    if graph.input_layout != "channels_last":  # written only when it says something
        meta["input_layout"] = graph.input_layout
    return meta


def save_graph(graph: Graph, directory: Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / GRAPH_FILE).write_text(json.dumps(graph_to_json(graph), indent=2) + "\n")
    arrays = {f"{layer.name}.{key}": value for layer in graph.layers for key, value in layer.arrays().items()}
    np.savez_compressed(directory / WEIGHTS_FILE, **arrays)  # pruned weights are mostly zeros


def _layer_from_json(entry: dict, arrays, where: str) -> Layer:
    kind = entry.get("kind")
    cls = LAYER_KINDS.get(kind)
    if cls is None:
        raise ModelError(f"{where}: unknown layer kind {kind!r}; known kinds are {sorted(LAYER_KINDS)}")
    known = {f.name for f in fields(cls)}
    unknown = set(entry) - known - {"kind", "arrays"}
    if unknown:
        raise ModelError(f"{where}: layer {entry.get('name')!r} has unknown keys {sorted(unknown)}")
    kwargs = {}
    for f in fields(cls):
        if f.name in entry.get("arrays", []):
            key = f"{entry['name']}.{f.name}"
            if key not in arrays:
                raise ModelError(f"{where}: array {key!r} is missing from {WEIGHTS_FILE}")
            kwargs[f.name] = np.asarray(arrays[key], dtype=np.float64)
        elif f.name in entry:
            value = entry[f.name]
            if f.name.endswith("_t") and value is not None:
                value = parse_type(value)
            elif f.name == "inputs":
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


def load_graph(directory: Path) -> Graph:
    directory = Path(directory)
    graph_path = directory / GRAPH_FILE
    if not graph_path.is_file():
        raise ModelError(f"{directory}: no {GRAPH_FILE}; is this an hwprune graph or export folder?")
    try:
        meta = json.loads(graph_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{graph_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{graph_path}: not an hwprune graph (expected \"format\": \"{FORMAT}\")")
    if meta.get("version") not in (CHAIN_VERSION, VERSION):
        raise ModelError(f"{graph_path}: graph format version {meta.get('version')!r}, this hwprune reads "
                         f"{CHAIN_VERSION} and {VERSION}; re-export the model with this hwprune")
    try:
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise ModelError(f"{directory}: {WEIGHTS_FILE} is missing") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{directory / WEIGHTS_FILE}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        layers = [
            _layer_from_json(entry, arrays, f"{graph_path} layer {i}") for i, entry in enumerate(meta["layers"])
        ]
        layout = meta.get("input_layout", "channels_last")
        if meta["version"] == CHAIN_VERSION:
            if any("inputs" in entry for entry in meta["layers"]):
                raise ModelError(f"{graph_path}: a version {CHAIN_VERSION} graph names no layer inputs")
            input_t = parse_type(meta["input_t"]) if meta.get("input_t") else None
            return Graph.chain(meta["name"], tuple(meta["input_shape"]), tuple(layers), input_t, layout)
        inputs = tuple(GraphInput(i["name"], tuple(i["shape"]), parse_type(i["t"]) if i.get("t") else None)
                       for i in meta["inputs"])
        return Graph(meta["name"], inputs, tuple(layers), tuple(meta["outputs"]), layout)
    except HwpruneError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{graph_path}: malformed graph ({type(exc).__name__}: {exc})") from None
