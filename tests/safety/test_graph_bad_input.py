"""Bad graphs through ``hwprune export``: a cycle, a dangling input, an Add of two shapes, a
Python ``if`` on a tensor (torch.fx cannot trace it), a Keras layer read at its second
output. Each is one line on stderr naming the node and the model file, exit 2, and the
folder unchanged (no export written, no temporary file left)."""

import json
import os
import re
import zipfile

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from tests.safety.conftest import snapshot

os.environ.setdefault("KERAS_BACKEND", "torch")


class TensorIf(nn.Module):
    """Control flow on a tensor's value: torch.fx refuses to trace it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x)
        return self.b(x)


class MismatchedAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 5)

    def forward(self, x):
        return self.a(x) + self.b(x)


def _onnx(path, nodes, weights):
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()]
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _keras_edited(folder, name, edit):
    """A small functional Keras model saved as .keras, its config.json changed by ``edit``."""
    import keras

    x = keras.Input((4,), name="features")
    h = keras.layers.Dense(5, activation="relu", name="hidden")(x)
    keras.Model(x, keras.layers.Dense(3, name="head")(h), name=name).save(folder / "plain.keras")
    with zipfile.ZipFile(folder / "plain.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    edit(config["config"])
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(folder / f"{name}.keras", "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    (folder / "plain.keras").unlink()


def _history(config, layer):
    entry = next(e for e in config["layers"] if e["name"] == layer)
    return entry["inbound_nodes"][0]["args"][0]["config"]["keras_history"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_graphs")
    w = {"w": np.ones((3, 4)), "b": np.zeros(3), "w5": np.ones((5, 4))}
    _onnx(root / "cycle.onnx", [helper.make_node("Relu", ["s"], ["a"], name="first"),
                                helper.make_node("Add", ["a", "x"], ["s"], name="second"),
                                helper.make_node("Relu", ["a"], ["y"], name="last")], {})
    _onnx(root / "dangling.onnx", [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
                                   helper.make_node("Add", ["h", "ghost"], ["y"], name="join")], w)
    _onnx(root / "add_shapes.onnx", [helper.make_node("Gemm", ["x", "w", "b"], ["h3"], name="fc3", transB=1),
                                     helper.make_node("Gemm", ["x", "w5"], ["h5"], name="fc5", transB=1),
                                     helper.make_node("Add", ["h3", "h5"], ["y"], name="join")], w)
    torch.save(TensorIf().eval(), root / "tensor_if.pt")
    torch.save(MismatchedAdd().eval(), root / "add_shapes.pt")
    _keras_edited(root, "second_output", lambda c: _history(c, "head").__setitem__(2, 1))
    _keras_edited(root, "returns_second_output", lambda c: c.__setitem__("output_layers", [["head", 0, 1]]))
    _keras_edited(root, "keras_dangling", lambda c: _history(c, "head").__setitem__(0, "nowhere"))
    np.save(root / "x.npy", np.random.default_rng(0).normal(size=(10, 4)))
    return root


CASES = {
    "cycle.onnx": (r"cycle: node 'first' \(Relu\)", ()),
    "dangling.onnx": (r"'join'.*'ghost'", ()),
    "add_shapes.onnx": (r"node 'join' \(Add\): operands of shapes \(N, 3\) and \(N, 5\)", ()),
    "tensor_if.pt": (r"'TensorIf'.* at test_graph_bad_input.py:\d+ \(`if x.sum\(\) > 0:`\).*control flow",
                     ("--trust-model",)),
    "add_shapes.pt": (r"layer 'add': Add operands 'a' \(3,\) and 'b' \(5,\)", ("--trust-model",)),
    "second_output.keras": (r"layer 'head' reads output 1 of layer 'hidden'", ()),
    "returns_second_output.keras": (r"returns output 1 of layer 'head'", ()),
    "keras_dangling.keras": (r"'head'.*'nowhere'", ()),
}


@pytest.mark.parametrize("model", sorted(CASES))
def test_a_bad_graph_is_one_line_naming_node_and_file(models, model, run):
    pattern, extra = CASES[model]
    before = snapshot(models)
    code, stdout, stderr = run("export", models / model, "--calibration", models / "x.npy",
                               "--out", models / "out", *extra)
    assert code == 2, stderr
    # --trust-model adds its warning line; the error is one line
    lines = [line for line in stderr.strip().splitlines() if "was unpickled with --trust-model" not in line]
    assert len(lines) == 1 and str(models / model) in lines[0], stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(models) == before  # nothing written, nothing left behind
