"""Keras frontend: float outputs against Keras 3's own predict (torch backend, no TensorFlow).

hwprune reads the files with h5py alone; Keras is only the oracle here.
"""

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from hwprune.errors import ModelError, UnsupportedLayerError, WeightError  # noqa: E402
from hwprune.frontends.keras import from_keras_file, from_keras_h5, from_keras_json, from_keras_model  # noqa: E402
from hwprune.quant.calibrate import float_forward  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
L = keras.layers


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ours(graph, x):
    """hwprune's float graph, with the final softmax marker applied as Keras does."""
    y = float_forward(graph, x)
    return _softmax(y) if graph.layers[-1].kind == "softmax" else y


def _randomize_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape) if i in (0, 3) else rng.normal(0, 0.5, w.shape)
                               for i, w in enumerate(layer.get_weights())])


MODELS = {
    "mlp": lambda: keras.Sequential([
        keras.Input((12,)), L.Dense(16), L.BatchNormalization(), L.ReLU(), L.Dropout(0.2),
        L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dense(4), L.Activation("softmax")]),
    "conv1d": lambda: keras.Sequential([
        keras.Input((20, 3)), L.Conv1D(4, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
        L.MaxPooling1D(2), L.Conv1D(5, 3, strides=2, padding="valid", activation="relu"),
        L.AveragePooling1D(2, padding="same"), L.Flatten(), L.Dense(3, activation="softmax")]),
    "conv2d": lambda: keras.Sequential([
        keras.Input((9, 9, 2)), L.Conv2D(3, (3, 2), strides=(2, 1), padding="same", activation="relu"),
        L.AveragePooling2D((2, 2)), L.Conv2D(4, 2, padding="valid", use_bias=False), L.ReLU(),
        L.MaxPooling2D(2, strides=1, padding="same"), L.Flatten(), L.Dropout(0.5), L.Dense(6)]),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request, tmp_path_factory):
    rng = np.random.default_rng(3)
    model = MODELS[request.param]()
    _randomize_norms(model, rng)
    path = tmp_path_factory.mktemp("keras") / f"{request.param}.keras"
    model.save(path)
    x = rng.standard_normal((64, *model.input_shape[1:]))
    return model, path, x, model.predict(x, verbose=0)


def test_keras3_file_matches_keras_predict(saved):
    model, path, x, expected = saved
    graph = from_keras_file(path)
    assert graph.name == path.stem
    np.testing.assert_allclose(_ours(graph, x), expected, rtol=1e-4, atol=1e-5)


def test_live_model_matches_keras_predict(saved):
    model, path, x, expected = saved
    graph = from_keras_model(model)
    np.testing.assert_allclose(_ours(graph, x), expected, rtol=1e-4, atol=1e-5)


def test_keras3_legacy_h5_of_the_whole_model_matches_keras_predict(saved, tmp_path):
    """``model.save('x.h5')``: Keras 3 still writes the legacy layout (model_config + model_weights)."""
    model, path, x, expected = saved
    h5 = tmp_path / f"{path.stem}.h5"
    model.save(h5)
    with h5py.File(h5, "r") as f:
        assert "model_config" in f.attrs and "model_weights" in f
    np.testing.assert_allclose(_ours(from_keras_h5(h5), x), expected, rtol=1e-4, atol=1e-5)


def _keras2_full_model_h5(json_path, weights_path, out):
    """What Keras 2's ``model.save`` writes: the architecture JSON as the ``model_config``
    attribute and the weights file's groups under ``model_weights``."""
    with h5py.File(out, "w") as f, h5py.File(weights_path, "r") as weights:
        f.attrs["model_config"] = Path(json_path).read_text().encode()
        f.attrs["keras_version"] = b"2.0.0"
        group = f.create_group("model_weights")
        for key, value in weights.attrs.items():
            group.attrs[key] = value
        for key in weights:
            weights.copy(weights[key], group, key)
    return out


def test_keras2_full_model_h5_equals_its_json_and_weights(tmp_path):
    json_path, weights_path = DATA / "KERAS_conv1d_small.json", DATA / "KERAS_conv1d_small_weights.h5"
    h5 = _keras2_full_model_h5(json_path, weights_path, tmp_path / "conv1d_small.h5")
    x = np.random.default_rng(0).standard_normal((20, 10, 4))
    assert np.array_equal(float_forward(from_keras_h5(h5), x), float_forward(from_keras_json(json_path, weights_path), x))


def test_full_model_h5_refusals_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="holds weights only.*--weights"):
        from_keras_h5(DATA / "KERAS_3layer_weights.h5")
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="d"), L.Lambda(lambda t: t * 2, name="code")])
    model.save(tmp_path / "lambda.h5")
    with pytest.raises(UnsupportedLayerError, match=r"'code' \(Lambda\) is not supported"):
        from_keras_h5(tmp_path / "lambda.h5")  # read as data: the Lambda's code never runs


def test_batchnorm_is_folded_not_kept(saved):
    graph = from_keras_file(saved[1])
    assert {layer.kind for layer in graph.layers} <= {"dense", "relu", "softmax", "flatten", "conv1d", "conv2d",
                                                      "maxpool1d", "avgpool1d", "maxpool2d", "avgpool2d"}


def _keras3_twin_of_jet_tagger(h5_path):
    """The jet tagger rebuilt in Keras 3, its weights set from the Keras 2 file by layer name."""
    model = keras.Sequential([keras.Input((16,)), L.Dense(64, activation="relu", name="fc1_relu"),
                              L.Dense(32, activation="relu", name="fc2_relu"),
                              L.Dense(32, activation="relu", name="fc3_relu"),
                              L.Dense(5, activation="softmax", name="output_softmax")])
    with h5py.File(h5_path, "r") as f:
        for layer in model.layers:
            group = f[layer.name][layer.name]
            layer.set_weights([group["kernel:0"][()], group["bias:0"][()]])
    return model


def test_keras2_json_and_h5_match_keras_predict():
    h5 = DATA / "KERAS_3layer_weights.h5"
    graph = from_keras_json(DATA / "KERAS_3layer.json", h5)
    x = np.random.default_rng(0).standard_normal((200, 16))
    expected = _keras3_twin_of_jet_tagger(h5).predict(x, verbose=0)
    np.testing.assert_allclose(_ours(graph, x), expected, rtol=1e-4, atol=1e-6)
    assert [layer.kind for layer in graph.layers] == ["dense", "relu"] * 3 + ["dense", "softmax"]


@pytest.mark.parametrize("name,shape", [("conv1d_small", (10, 4)), ("conv2d_model", (8, 8, 1))])
def test_shared_conv_models_read(name, shape):
    graph = from_keras_json(DATA / f"KERAS_{name}.json", DATA / f"KERAS_{name}_weights.h5")
    assert graph.input_shape == shape
    assert graph.layers[-1].kind == "softmax"


def test_unsupported_layer_names_it(tmp_path):
    model = keras.Sequential([keras.Input((4,)), L.Dense(3), L.ELU(name="leaky"), L.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match=r"'leaky' \(ELU\)"):
        from_keras_model(model)
    model.save(tmp_path / "m.keras")
    with pytest.raises(UnsupportedLayerError, match="leaky"):
        from_keras_file(tmp_path / "m.keras")


def test_unsupported_activation_names_the_layer():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="elu", name="squash")])
    with pytest.raises(UnsupportedLayerError, match=r"'squash'.*elu"):
        from_keras_model(model)


def test_weights_that_do_not_fit_name_the_layer(tmp_path):
    h5 = tmp_path / "w.h5"
    shutil.copy(DATA / "KERAS_3layer_weights.h5", h5)
    with h5py.File(h5, "r+") as f:
        del f["fc2_relu/fc2_relu/kernel:0"]
        f["fc2_relu/fc2_relu/kernel:0"] = np.zeros((64, 31), dtype=np.float32)
    with pytest.raises(WeightError, match=r"'fc2_relu' \(Dense\).*\(64, 31\)"):
        from_keras_json(DATA / "KERAS_3layer.json", h5)


def test_a_shared_layer_is_refused():
    inp = keras.Input((4,))
    shared = L.Dense(4, name="shared")
    model = keras.Model(inp, L.Add(name="join")([shared(inp), shared(shared(inp))]))
    with pytest.raises(UnsupportedLayerError, match=r"'shared' is called 3 times"):
        from_keras_model(model)


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(ModelError, match="not a Keras 3 .keras file"):
        from_keras_file(bad)
    with pytest.raises(ModelError, match="not an HDF5 weights file"):
        from_keras_json(DATA / "KERAS_3layer.json", DATA / "KERAS_3layer.json")
