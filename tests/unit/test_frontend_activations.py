"""Activations through the frontends: torch modules and functions, ONNX nodes, Keras layers
and Activation strings become LeakyReLU/HardSigmoid/Sigmoid/Tanh layers whose float graph
computes what the source model computes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hwprune.quant.calibrate import float_forward

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 without TensorFlow
torch = pytest.importorskip("torch")
nn = torch.nn


class _Net(nn.Module):
    """Modules and functions in one forward, every activation once."""

    def __init__(self):
        super().__init__()
        self.fc0, self.fc1, self.fc2 = nn.Linear(5, 7), nn.Linear(7, 7), nn.Linear(7, 3)
        self.tanh, self.leaky, self.prelu, self.hard = nn.Tanh(), nn.LeakyReLU(0.2), nn.PReLU(7), nn.Hardsigmoid()

    def forward(self, x):
        x = torch.sigmoid(self.leaky(self.tanh(self.fc0(x))))
        return self.fc2(self.hard(self.prelu(self.fc1(x))))


def test_torch_activations_map_and_round_trip(rng):
    from hwprune.frontends.torch import from_torch, to_torch

    torch.manual_seed(0)
    model = _Net().double().eval()
    with torch.no_grad():
        model.prelu.weight.copy_(torch.linspace(-0.5, 0.5, 7, dtype=torch.float64))
    graph = from_torch(model)
    assert [l.kind for l in graph.layers] == ["dense", "tanh", "leaky_relu", "sigmoid", "dense", "leaky_relu",
                                              "hard_sigmoid", "dense"]
    assert graph.layers[5].per_channel and not graph.layers[2].per_channel
    x = rng.normal(size=(40, 5)) * 3
    want = model(torch.tensor(x)).detach().numpy()
    assert np.allclose(float_forward(graph, x), want, rtol=0, atol=1e-12)
    assert np.allclose(to_torch(graph)(torch.tensor(x)).detach().numpy(), want, rtol=0, atol=1e-12)


def test_torch_silu_is_a_sigmoid_and_a_multiply(rng):
    from hwprune.frontends.torch import from_torch, to_torch

    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.SiLU(), nn.Linear(6, 2)).double().eval()
    graph = from_torch(model)
    assert [(l.kind, l.inputs) for l in graph.layers] == [
        ("dense", ("input",)), ("sigmoid", ("dense_0",)), ("multiply", ("dense_0", "silu_1_sigmoid")),
        ("dense", ("silu_1",))]
    x = rng.normal(size=(20, 4)) * 3
    want = model(torch.tensor(x)).detach().numpy()
    assert np.allclose(float_forward(graph, x), want, rtol=0, atol=1e-12)
    back = to_torch(graph)
    assert [type(m).__name__ for m in back] == ["Linear", "SiLU", "Linear"]
    assert np.allclose(back(torch.tensor(x)).detach().numpy(), want, rtol=0, atol=1e-12)


def test_torch_selu_maps_and_round_trips(rng):
    from hwprune.frontends.torch import from_torch, to_torch

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 6), nn.SELU(), nn.Linear(6, 2)).double().eval()
    graph = from_torch(model)
    assert [l.kind for l in graph.layers] == ["dense", "selu", "dense"]
    x = rng.normal(size=(20, 4)) * 3
    want = model(torch.tensor(x)).detach().numpy()
    assert np.allclose(float_forward(graph, x), want, rtol=0, atol=1e-12)
    assert np.allclose(to_torch(graph)(torch.tensor(x)).detach().numpy(), want, rtol=0, atol=1e-12)


def test_torch_activations_load_safely(tmp_path):
    from hwprune.frontends.torch import load_torch_model

    model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4),
                          nn.LeakyReLU(), nn.Linear(4, 4), nn.PReLU(), nn.Linear(4, 4), nn.Hardsigmoid(), nn.SiLU(),
                          nn.SELU())
    torch.save(model, tmp_path / "m.pt")
    loaded = load_torch_model(tmp_path / "m.pt")  # the allow-list: no --trust-model needed
    assert [type(m).__name__ for m in loaded] == [type(m).__name__ for m in model]


def test_onnx_activations(rng, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from hwprune.frontends.onnx import load_onnx

    w = [rng.normal(size=(6, 6)).astype(np.float32) for _ in range(5)]
    slope = np.linspace(-0.3, 0.6, 6).astype(np.float32)
    inits = [numpy_helper.from_array(a, f"w{i}") for i, a in enumerate(w)] + [numpy_helper.from_array(slope, "slope")]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["m0"]), helper.make_node("Sigmoid", ["m0"], ["a0"]),
             helper.make_node("MatMul", ["a0", "w1"], ["m1"]), helper.make_node("Tanh", ["m1"], ["a1"]),
             helper.make_node("MatMul", ["a1", "w2"], ["m2"]), helper.make_node("LeakyRelu", ["m2"], ["a2"], alpha=0.3),
             helper.make_node("MatMul", ["a2", "w3"], ["m3"]), helper.make_node("HardSigmoid", ["m3"], ["a3"]),
             helper.make_node("MatMul", ["a3", "w4"], ["m4"]), helper.make_node("PRelu", ["m4", "slope"], ["p"]),
             helper.make_node("Sigmoid", ["p"], ["gate"]), helper.make_node("Mul", ["p", "gate"], ["y"])]  # SiLU
    graph = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 6])], inits)
    path = tmp_path / "acts.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    g = load_onnx(path, "acts")
    assert [l.kind for l in g.layers if l.kind != "dense"] == ["sigmoid", "tanh", "leaky_relu", "hard_sigmoid",
                                                                "leaky_relu", "sigmoid", "multiply"]
    assert np.allclose(next(l for l in g.layers if l.kind == "leaky_relu" and l.per_channel).alpha, slope)
    hard = next(l for l in g.layers if l.kind == "hard_sigmoid")
    assert (hard.slope, hard.shift) == (np.float32(0.2), 0.5)  # ONNX's defaults, as float32 attributes
    x = rng.normal(size=(30, 6)).astype(np.float32) * 2
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(float_forward(g, x), want, rtol=0, atol=1e-4)


def test_onnx_selu(rng, tmp_path):
    """Selu with ONNX's default constants (SELU's, as float32) is a Selu layer computing what
    onnxruntime computes; other constants are refused (hls4ml's are fixed)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from hwprune.errors import UnsupportedLayerError
    from hwprune.frontends.onnx import load_onnx

    w = rng.normal(size=(4, 5)).astype(np.float32)

    def save(name, **attrs):
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Selu", ["m"], ["y"], **attrs)]
        graph = helper.make_graph(nodes, "selu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
                                  [numpy_helper.from_array(w, "w")])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / name)
        return tmp_path / name

    path = save("default.onnx")
    g = load_onnx(path, "selu")
    assert [l.kind for l in g.layers] == ["dense", "selu"]
    x = rng.normal(size=(30, 4)).astype(np.float32) * 2
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert (want < 0).any() and (want > 0).any()
    assert np.allclose(float_forward(g, x), want, rtol=0, atol=1e-5)
    with pytest.raises(UnsupportedLayerError, match="alpha = 1.5"):
        load_onnx(save("alpha.onnx", alpha=1.5), "selu")


def test_keras_hard_sigmoid_is_refused_as_ambiguous():
    from hwprune.errors import UnsupportedLayerError
    from hwprune.frontends.keras_layers import Builder, CONVERTERS

    with pytest.raises(UnsupportedLayerError, match="'hard_sigmoid' is not supported"):
        CONVERTERS["Activation"](Builder((4,)), "act", "act", {"activation": "hard_sigmoid"}, ())


def test_keras_activations(rng):
    keras = pytest.importorskip("keras")
    from hwprune.frontends.keras import from_keras_model

    model = keras.Sequential([
        keras.Input((5,)), keras.layers.Dense(6, activation="sigmoid"), keras.layers.Dense(6, activation="selu"),
        keras.layers.Dense(6, activation="tanh"),
        keras.layers.Dense(6), keras.layers.LeakyReLU(negative_slope=0.25), keras.layers.Dense(6),
        keras.layers.Activation("tanh"), keras.layers.Dense(6), keras.layers.PReLU(), keras.layers.Dense(2)])
    model.layers[-2].set_weights([rng.uniform(-0.5, 0.5, 6)])
    g = from_keras_model(model)
    assert [l.kind for l in g.layers if l.kind != "dense"] == ["sigmoid", "selu", "tanh", "leaky_relu", "tanh",
                                                                "leaky_relu"]
    leaky, prelu = (l for l in g.layers if l.kind == "leaky_relu")
    assert leaky.alpha.tolist() == [0.25] and prelu.per_channel
    x = rng.normal(size=(30, 5)) * 2
    want = keras.ops.convert_to_numpy(model.predict(x.astype(np.float32), verbose=0))
    assert np.allclose(float_forward(g, x), want, rtol=0, atol=1e-5)


def test_onnx_prelu_per_channel_after_a_conv(rng, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from hwprune.frontends.onnx import load_onnx

    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    slope = np.array([-0.2, 0.1, 0.7], np.float32).reshape(3, 1, 1)  # ONNX's per-channel form for NCHW
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("PRelu", ["c", "slope"], ["y"])]
    graph = helper.make_graph(nodes, "cp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3, 5, 5])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(slope, "slope")])
    path = tmp_path / "cp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    g = load_onnx(path, "cp")
    assert g.layers[-1].kind == "leaky_relu" and g.layers[-1].alpha.tolist() == pytest.approx([-0.2, 0.1, 0.7])
    x = rng.normal(size=(4, 2, 5, 5)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = float_forward(g, x)  # channels-last
    assert np.allclose(np.moveaxis(got, -1, 1), want, rtol=0, atol=1e-4)
