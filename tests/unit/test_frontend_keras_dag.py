"""Keras functional models with branches (a residual Add, a Concatenate of two paths, a
Multiply, ReLU(max_value) as Clip, a DepthwiseConv2D): read from .keras and whole-model .h5
files with h5py alone, equal to Keras 3's predict (torch backend) and bit-exact once exported."""

import json
import os

import h5py
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from hwprune.cli import main  # noqa: E402
from hwprune.errors import UnsupportedLayerError  # noqa: E402
from hwprune.frontends.keras import from_keras_file, from_keras_h5, from_keras_model  # noqa: E402
from hwprune.quant.calibrate import float_forward  # noqa: E402

L = keras.layers


def residual():
    """conv-BN-ReLU6, a residual Add over a conv-BN block, a depthwise conv, pooling, Dense."""
    x = keras.Input((6, 6, 3), name="image")
    h = L.ReLU(max_value=6.0, name="stem_relu6")(L.BatchNormalization(name="stem_bn")(
        L.Conv2D(4, 3, padding="same", name="stem")(x)))
    body = L.BatchNormalization(name="body_bn")(L.Conv2D(4, 3, padding="same", name="body")(h))
    h = L.ReLU(name="block_out")(L.Add(name="residual")([h, body]))
    h = L.DepthwiseConv2D(3, depth_multiplier=2, padding="valid", activation="relu", name="depthwise")(h)
    y = L.Dense(3, name="head")(L.Flatten(name="flat")(L.MaxPooling2D(2, name="pool")(h)))
    return keras.Model(x, y, name="residual")


def branches():
    """Two Dense paths joined by Concatenate, a Multiply of two paths, a three-way Add."""
    x = keras.Input((8,), name="features")
    a = L.Dense(6, activation="relu", name="left")(x)
    b = L.Dense(6, activation="relu6", name="right")(x)
    c = L.Dense(6, name="gate")(x)
    joined = L.Concatenate(name="join")([a, L.Multiply(name="gated")([b, c])])
    summed = L.Add(name="sum3")([a, b, c])
    y = L.Dense(4, name="head")(L.Concatenate(name="all")([joined, summed]))
    return keras.Model(x, y, name="branches")


MODELS = {"residual": residual, "branches": branches}


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request, tmp_path_factory):
    rng = np.random.default_rng(0)
    model = MODELS[request.param]()
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape) if i in (0, 3) else rng.normal(0, 0.5, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    folder = tmp_path_factory.mktemp("keras_dag")
    model.save(folder / f"{request.param}.keras")
    model.save(folder / f"{request.param}.h5")
    x = rng.standard_normal((32, *model.input_shape[1:])) * 2
    return model, folder / f"{request.param}.keras", folder / f"{request.param}.h5", x


def test_functional_graphs_match_keras_predict(saved):
    model, keras_path, h5_path, x = saved
    expected = model.predict(x, verbose=0)
    for graph in (from_keras_file(keras_path), from_keras_h5(h5_path), from_keras_model(model)):
        assert not graph.is_chain
        kinds = {layer.kind for layer in graph.layers}
        assert "batchnorm" not in kinds and {"add", "concatenate", "conv2d", "clip"} & kinds
        np.testing.assert_allclose(float_forward(graph, x), expected, rtol=1e-5, atol=1e-5)


def _keras2_inbound(nodes):
    """Keras 3's inbound nodes (``keras_history`` inside ``args``) as Keras 2 writes them."""
    names = []

    def walk(node):
        if isinstance(node, dict) and "keras_history" in node.get("config", {}):
            names.append([node["config"]["keras_history"][0], 0, 0, {}])
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(nodes)
    return [names] if names else []


def test_keras2_functional_config_reads_the_same_graph(saved, tmp_path):
    """Keras 2's functional format: ``inbound_nodes`` as ``[[[name, 0, 0, {}], ...]]`` and
    ``output_layers`` as ``[[name, 0, 0]]``."""
    model, _, h5_path, x = saved
    keras2 = tmp_path / "keras2.h5"
    with h5py.File(h5_path, "r") as source, h5py.File(keras2, "w") as target:
        config = json.loads(source.attrs["model_config"])
        for layer in config["config"]["layers"]:
            layer["inbound_nodes"] = _keras2_inbound(layer["inbound_nodes"])
        config["config"]["output_layers"] = [config["config"]["output_layers"]]
        target.attrs["model_config"] = json.dumps(config).encode()
        source.copy(source["model_weights"], target, "model_weights")
    with h5py.File(keras2, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    assert any(len(layer["inbound_nodes"][0]) == 2 for layer in layers if layer["inbound_nodes"])
    np.testing.assert_array_equal(float_forward(from_keras_h5(keras2), x), float_forward(from_keras_h5(h5_path), x))


def test_layers_read_their_branches(saved):
    model, keras_path, _, _ = saved
    graph = from_keras_file(keras_path)
    if model.name == "residual":
        assert graph.layer("residual").inputs == ("stem_relu6", "body")  # body_bn folded into body
        assert graph.layer("stem_relu6").kind == "clip" and graph.layer("stem_relu6").max_value == 6.0
        depthwise = graph.layer("depthwise")
        assert depthwise.depthwise and depthwise.weight.shape == (8, 3, 3, 1)
    else:  # a three-way Add is a chain of two; relu6 as an activation is a Clip
        assert graph.layer("sum3_1").inputs == ("left_relu", "right_relu6")
        assert graph.layer("sum3").inputs == ("sum3_1", "gate")
        assert graph.layer("right_relu6").kind == "clip" and graph.layer("all").inputs == ("join", "sum3")


def test_functional_export_is_bit_exact(saved, tmp_path, capsys):
    model, keras_path, h5_path, x = saved
    np.save(tmp_path / "x.npy", x)
    path = keras_path if model.name == "residual" else h5_path
    code = main(["export", str(path), "--calibration", str(tmp_path / "x.npy"), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 0 and "bit-exact" in err, err


def test_a_norm_before_a_merge_is_a_layer_of_its_own():
    x = keras.Input((4,))
    a = L.ReLU(name="act")(L.Dense(4)(x))
    model = keras.Model(x, L.Add(name="join")([L.BatchNormalization(name="norm")(a), a]))
    norm = model.get_layer("norm")
    norm.set_weights([np.array([0.5, 2.0, -1.0, 1.5]), np.array([0.1, -0.2, 0.3, 0.0]),
                      np.array([0.2, 0.1, -0.3, 0.4]), np.array([1.5, 0.7, 2.0, 1.0])])
    graph = from_keras_model(model)
    assert graph.layer("norm").kind == "batchnorm" and graph.layer("join").inputs == ("norm", "act")
    data = np.random.default_rng(3).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_allclose(float_forward(graph, data), model.predict(data, verbose=0), rtol=1e-5, atol=1e-5)
