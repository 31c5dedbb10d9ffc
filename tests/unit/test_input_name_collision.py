"""A layer named as the graph input (``input``) in a Keras or ONNX model: the IR gives it a
fresh name, so the graph is built and computes what the framework computes."""

import os

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwprune.ir.graph import INPUT
from hwprune.pipeline import load_model
from hwprune.quant.calibrate import float_forward

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def test_a_keras_layer_named_input_is_renamed(tmp_path):
    L = keras.layers
    x = keras.Input((4,), name="features")
    h = L.Dense(5, activation="relu", name="input")(x)  # its ReLU would be "input_relu"
    h = L.Dense(5, name="input_2")(h)
    y = L.Dense(3, name="input_relu")(L.Add(name="sum")([h, L.Dense(5, name="other")(x)]))
    model = keras.Model(x, y)
    model.save(tmp_path / "m.keras")
    graph = load_model(tmp_path / "m.keras")
    names = [layer.name for layer in graph.layers]
    assert INPUT not in names and len(set(names)) == len(names)
    assert graph.layer(names[0]).inputs == (INPUT,)
    data = np.random.default_rng(0).normal(size=(16, 4))
    np.testing.assert_allclose(float_forward(graph, data), model.predict(data, verbose=0), rtol=1e-5, atol=1e-5)


def test_an_onnx_node_named_input_is_renamed(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in (("w", (3, 4)), ("b", (3,)))]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["input"], name="input", transB=1),
             helper.make_node("Relu", ["input"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    ir = load_model(tmp_path / "m.onnx")
    assert INPUT not in [layer.name for layer in ir.layers]
    data = rng.normal(size=(8, 4)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(float_forward(ir, data), session.run(None, {"x": data})[0], rtol=1e-5, atol=1e-5)
