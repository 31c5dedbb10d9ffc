"""The ``tflm`` engine: TFLite Micro's own interpreter (``pip install tflite-micro``) on the
original ``.tflite`` file an int8 export was made from.

It is the oracle of the int8 dialect: its reference kernels are what ``reference.int8``
implements. The interpreter keeps every tensor (``kPreserveAllTensors``), so the engine
returns a trace of every IR layer (the tensor each one produced, ``frontends.tflite``),
and a mismatch names the first operator that differs. When dead-channel removal took
channels out of the export's graph (``prune.dead_channels``), TFLM still computes every channel
of the original file: each tensor of the trace keeps the channels the export kept, so it
compares with the export's graph tensor by tensor.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.errors import ModelError
from hwprune.frontends.tflite import read_tflite
from hwprune.exportdir import removed_channels
from hwprune.harness.engines import Engine, EngineRun, Model, check_inputs, register_engine
from hwprune.ir.graph import Graph
from hwprune.ir.io import load_graph

TFLITE_FILE = "model.tflite"


def find_tflite(model: Model) -> Optional[Path]:
    """The ``.tflite`` file of an int8 export folder (its top or its ``c/`` folder)."""
    if isinstance(model, Graph):
        return None
    folder = Path(model)
    for candidate in (folder / TFLITE_FILE, folder.parent / TFLITE_FILE):
        if candidate.is_file():
            return candidate
    return None


def _runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


class TflmEngine(Engine):
    name = "tflm"
    description = "TFLite Micro's interpreter (tflite-micro) on the original .tflite file"
    by_default = False  # only an export read from a .tflite file has this oracle

    def __init__(self, tflite_path=None):
        self.tflite_path = Path(tflite_path) if tflite_path is not None else None

    def unavailable_reason(self) -> str:
        if importlib.util.find_spec("tflite_micro") is None:
            return "tflite-micro is not installed (pip install tflite-micro)"
        return ""

    def skip_reason(self, export_dir) -> str:
        if self.tflite_path is None and find_tflite(export_dir) is None:
            return f"{export_dir} holds no {TFLITE_FILE}: only a model read from a .tflite file has TFLM as its oracle"
        return ""

    def run(self, model: Model, x_int) -> EngineRun:
        path = self.tflite_path or find_tflite(model)
        if path is None:
            raise ModelError(f"{model}: no {TFLITE_FILE} to run TFLite Micro on")
        parsed = read_tflite(path)
        graph = model if isinstance(model, Graph) else _graph_of(model)
        if [l.name for l in parsed.graph.layers] != [l.name for l in graph.layers]:
            raise ModelError(f"{path}: its operators do not match the export's graph (layers "
                             f"{[l.name for l in graph.layers][:4]}...)")
        removed = {} if isinstance(model, Graph) else removed_channels(_folder_of(model))
        x = check_inputs(graph, x_int)
        runtime = _runtime()
        interpreter = runtime.Interpreter.from_file(
            str(path), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        original = parsed.graph
        layers = {layer.name: np.empty((x.shape[0], *original.shape_of(layer.name)), dtype=np.int64)
                  for layer in original.layers}
        batch_input = (1, *graph.input_shape)
        for i in range(x.shape[0]):
            interpreter.set_input(x[i].reshape(batch_input).astype(np.int8), 0)
            interpreter.invoke()
            for layer in original.layers:
                data = np.asarray(interpreter.GetTensor(parsed.tensors[layer.name], 0)["tensor_data"])
                layers[layer.name][i] = data.reshape(layers[layer.name].shape[1:])
        for name, channels in removed.items():  # the channels the export kept, in their order
            if name in layers:
                layers[name] = np.delete(layers[name], list(channels), axis=-1)
        trace = tuple((layer.name, layers[layer.name]) for layer in graph.layers)
        return EngineRun(self.name, layers[graph.output], trace)


def _folder_of(model) -> Path:
    folder = Path(model)
    return folder if (folder / "graph.json").is_file() else folder.parent


def _graph_of(model) -> Graph:
    return load_graph(_folder_of(model))


register_engine(TflmEngine.name, TflmEngine)
