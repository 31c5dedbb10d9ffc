"""QKeras models read as the types they declare, against QKeras's formulas written out here.

The oracle is QKeras's quantizers (google/qkeras ``qkeras/quantizers.py``), transcribed in
numpy independently of hwprune: ``quantized_bits`` with alpha 1 is
``clip(round(x * 2^(bits - keep_negative - integer)), lo, 2^(bits - keep_negative) - 1)``
over the same power of two, ``quantized_relu(bits, integer)`` is
``clip(round(x * 2^(bits - integer)), 0, 2^bits - 1) / 2^(bits - integer)``, and round is
TensorFlow's (half to even, as ``np.round``). Dense layers are ``x @ W + b`` in float64,
exact on these grids. TensorFlow is not needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hwprune import reference
from hwprune.errors import UnsupportedLayerError
from hwprune.exportdir import read_vectors
from hwprune.frontends.keras import from_keras_file, from_keras_json
from hwprune.pipeline import ExportOptions, export_model
from hwprune.ir.fixed import Rounding, to_real

DATA = Path(__file__).resolve().parents[1] / "data"
JSON, WEIGHTS = DATA / "qkeras_3layer.json", DATA / "qkeras_3layer_weights.h5"


def qkeras_bits(x, bits, integer, symmetric=False, keep_negative=True):
    unsigned_bits = bits - int(keep_negative)
    m, m_i = 2.0 ** unsigned_bits, 2.0 ** integer
    lowest = (-m + int(symmetric)) if keep_negative else 0.0
    return m_i * np.clip(np.round(x * m / m_i), lowest, m - 1) / m


def qkeras_relu(x, bits, integer):
    m, m_i = 2.0 ** bits, 2.0 ** integer
    return m_i * np.clip(np.round(np.maximum(x, 0.0) * m / m_i) / m, 0.0, 1.0 - 1.0 / m)


def _quantizer(spec):
    config = spec["config"]
    if spec["class_name"] == "quantized_bits":
        assert config["alpha"] in (None, 1)
        return lambda v: qkeras_bits(v, config["bits"], config["integer"], config["symmetric"],
                                     config["keep_negative"])
    assert spec["class_name"] == "quantized_relu" and config["negative_slope"] == 0.0
    return lambda v: qkeras_relu(v, config["bits"], config["integer"])


def qkeras_forward(json_path: Path, weights_path: Path, x: np.ndarray, ties: list) -> np.ndarray:
    """The Sequential model of QDense / QActivation layers, as QKeras computes it (float64).
    ``ties`` collects how many values each activation quantizer saw exactly between two steps."""
    layers = json.loads(json_path.read_text())["config"]["layers"]
    with h5py.File(weights_path, "r") as h5:
        for entry in layers:
            kind, config = entry["class_name"], entry["config"]
            if kind == "QDense":
                group = h5[config["name"]]
                names = [n.decode() for n in group.attrs["weight_names"]]
                kernel, bias = (np.asarray(group[n], dtype=np.float64) for n in names)
                x = x @ _quantizer(config["kernel_quantizer"])(kernel) + _quantizer(config["bias_quantizer"])(bias)
            elif kind == "QActivation":
                step = 2.0 ** (config["activation"]["config"]["integer"] - config["activation"]["config"]["bits"])
                ties.append(int(np.count_nonzero(np.mod(x / step, 1.0) == 0.5)))
                x = _quantizer(config["activation"])(x)
    return x


def _inputs(graph, count=200, spread=1 << 12):
    """Values on the input type's grid (fixed<16,6>: 10 fraction bits) within +-4, the scale of
    the tagger's standardized features."""
    q = np.random.default_rng(7).integers(-spread, spread, size=(count, *graph.input_shape))
    return np.ldexp(q.astype(np.float64), -graph.input_t.frac_bits)


def test_three_layer_model_equals_qkeras_without_calibration():
    graph = from_keras_json(JSON, WEIGHTS)
    assert graph.is_quantized
    relu1 = graph.layer("relu1")
    assert str(relu1.result_t) == "ufixed<6,0,RND_CONV,SAT>"
    assert str(graph.layer("fc1").weight_t) == "fixed<6,1,RND_CONV,SAT>"
    x = _inputs(graph)
    ties: list[int] = []
    expected = qkeras_forward(JSON, WEIGHTS, x, ties)
    assert sum(ties) > 0  # half-to-even decides some values: the test sees the rounding mode
    got = to_real(reference.run(graph, reference.quantize_input(graph, x)), graph.output_t)
    if not np.array_equal(got, expected):
        i, j = np.argwhere(got != expected)[0]
        pytest.fail(f"vector {i}, output {j}: hwprune {got[i, j]}, QKeras {expected[i, j]}")


def test_half_up_rounding_would_differ():
    """The same graph with AP_RND instead of RND_CONV misses QKeras on the ties."""
    graph = from_keras_json(JSON, WEIGHTS)
    half_up = graph.with_layers([layer.with_(result_t=layer.result_t.with_(rounding=Rounding.RND))
                                 if layer.kind == "relu" else layer for layer in graph.layers])
    x = _inputs(graph)
    expected = qkeras_forward(JSON, WEIGHTS, x, [])
    got = to_real(reference.run(half_up, reference.quantize_input(half_up, x)), half_up.output_t)
    assert not np.array_equal(got, expected)


def test_keras3_file_reads_the_same_model():
    a, b = from_keras_json(JSON, WEIGHTS), from_keras_file(DATA / "qkeras-v3_3layer.keras")
    assert [l.kind for l in a.layers] == [l.kind for l in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert la.types() == lb.types(), la.name
        for key, arr in la.arrays().items():
            assert np.array_equal(arr, lb.arrays()[key]), (la.name, key)


def test_export_is_bit_exact_and_equals_qkeras(tmp_path):
    graph = from_keras_json(JSON, WEIGHTS)
    out = export_model(graph, tmp_path / "out", options=ExportOptions(), source=str(JSON))
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True  # the host C equals the integer reference
    vectors = read_vectors(out)
    expected = qkeras_forward(JSON, WEIGHTS, vectors["x"], [])
    assert np.array_equal(to_real(vectors["y_int"], graph.output_t), expected)


def _write_model(tmp_path, layers, weights: dict, input_shape):
    model = {"class_name": "Sequential", "config": {"name": "q", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, *input_shape]}}, *layers]}}
    (tmp_path / "m.json").write_text(json.dumps(model))
    with h5py.File(tmp_path / "m.h5", "w") as h5:
        for name, arrays in weights.items():
            group = h5.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{i}".encode() for i in range(len(arrays))]
            for i, arr in enumerate(arrays):
                group[f"{name}/{i}"] = arr.astype(np.float32)
    return tmp_path / "m.json", tmp_path / "m.h5"


def _bits(bits, integer, symmetric=0, keep_negative=True, alpha=1):
    return {"class_name": "quantized_bits", "config": {"bits": bits, "integer": integer, "symmetric": symmetric,
                                                        "keep_negative": keep_negative, "alpha": alpha}}


def test_qconv1d_with_string_quantizers_and_a_symmetric_activation(tmp_path, rng):
    kernel, bias = rng.normal(0, 0.6, (3, 2, 4)), rng.normal(0, 0.3, 4)
    layers = [
        {"class_name": "QConv1D", "config": {"name": "conv", "filters": 4, "kernel_size": [3], "padding": "same",
                                             "kernel_quantizer": "quantized_bits(5,1,alpha=1)",
                                             "bias_quantizer": _bits(8, 2), "activation": "quantized_relu(4,1)"}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {"class_name": "QDense", "config": {"name": "fc", "units": 3, "kernel_quantizer": _bits(4, 0, 1),
                                            "bias_quantizer": _bits(4, 0, 1), "activation": "linear"}},
        {"class_name": "QActivation", "config": {"name": "q", "activation": _bits(3, 1, symmetric=1)}},
    ]
    dense_w, dense_b = rng.normal(0, 0.4, (24, 3)), rng.normal(0, 0.3, 3)
    json_path, h5_path = _write_model(tmp_path, layers, {"conv": [kernel, bias], "fc": [dense_w, dense_b]}, (6, 2))
    graph = from_keras_json(json_path, h5_path)
    assert graph.is_quantized
    x = _inputs(graph, 300, spread=1 << 11)
    got = to_real(reference.run(graph, reference.quantize_input(graph, x)), graph.output_t)

    k = qkeras_bits(kernel.astype(np.float32).astype(np.float64), 5, 1)
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    conv = np.stack([np.einsum("nkc,kcf->nf", padded[:, i:i + 3], k) for i in range(6)], axis=1)
    conv = qkeras_relu(conv + qkeras_bits(bias.astype(np.float32), 8, 2), 4, 1)
    dense = conv.reshape(len(x), -1) @ qkeras_bits(dense_w.astype(np.float32), 4, 0, 1) + qkeras_bits(
        dense_b.astype(np.float32), 4, 0, 1)
    expected = qkeras_bits(dense, 3, 1, symmetric=1)
    assert expected.min() == -1.5  # the symmetric quantizer's lowest value, never -2, is reached
    assert np.array_equal(got, expected)


def qkeras_po2(x, bits, max_value=None):
    """QKeras's quantized_po2 (log2_rounding "rnd"), its float32 log as TensorFlow takes it."""
    effect = bits - 1 - (0 if max_value is not None and max_value <= 1 else 1)
    x = np.asarray(x, dtype=np.float32)
    magnitude = np.abs(x) if max_value is None else np.minimum(np.abs(x), np.float32(max_value))
    log2 = np.log(np.maximum(magnitude, np.float32(1e-7))) / np.float32(np.log(2.0))
    exponent = np.where(np.abs(x) < np.float32(1e-7), -(2 ** effect), np.clip(np.round(log2), -(2 ** effect),
                                                                                 2 ** effect - 1))
    return np.where(x >= 0, 1.0, -1.0) * 2.0 ** exponent.astype(np.float64)


def test_quantized_po2_weights(tmp_path, rng):
    kernel, bias = rng.normal(0, 0.5, (5, 3)), rng.normal(0, 0.3, 3)
    kernel[0, 0], kernel[1, 1] = 0.0, 40.0  # a zero becomes the smallest power; a large one the largest
    layers = [{"class_name": "QDense", "config": {"name": "fc", "units": 3, "activation": "linear",
                                                  "kernel_quantizer": {"class_name": "quantized_po2",
                                                                       "config": {"bits": 4, "max_value": None}},
                                                  "bias_quantizer": _bits(6, 1)}}]
    json_path, h5_path = _write_model(tmp_path, layers, {"fc": [kernel, bias]}, (5,))
    graph = from_keras_json(json_path, h5_path)
    want = qkeras_po2(kernel, 4)
    assert want[0, 0] == 2.0 ** -4 and want[1, 1] == 8.0
    assert np.array_equal(graph.layer("fc").weight, want.T)
    x = _inputs(graph, 50, spread=1 << 11)
    got = to_real(reference.run(graph, reference.quantize_input(graph, x)), graph.output_t)
    assert np.array_equal(got, x @ want + qkeras_bits(bias.astype(np.float32), 6, 1))


def test_quantized_po2_weight_on_a_rounding_boundary_is_refused(tmp_path):
    kernel = np.full((2, 2), 0.25)
    kernel[1, 0] = 2.0 ** -4.5  # float32's log decides which power: hwprune does not guess
    layers = [{"class_name": "QDense", "config": {"name": "fc", "units": 2, "kernel_quantizer": "quantized_po2(4)",
                                                  "bias_quantizer": _bits(4, 0)}}]
    json_path, h5_path = _write_model(tmp_path, layers, {"fc": [kernel, np.zeros(2)]}, (2,))
    with pytest.raises(UnsupportedLayerError, match=r"'fc'.*halfway between two powers of two"):
        from_keras_json(json_path, h5_path)


def test_a_weight_qkeras_puts_off_its_grid_is_refused(tmp_path):
    """QKeras 0.9 (TensorFlow 2.15) gives quantized_bits(6, 0, alpha=1) of 2^18 + 1 as 31/32 and
    of 2^19 + 1 as 1.0, off its grid (docs/quantized_models.md): x + (q - x) in float32."""
    kernel = np.full((2, 2), 0.25)
    kernel[1, 0] = 2.0 ** 18 + 1
    layers = [{"class_name": "QDense", "config": {"name": "fc", "units": 2, "kernel_quantizer": _bits(6, 0),
                                                  "bias_quantizer": _bits(6, 0)}}]
    json_path, h5_path = _write_model(tmp_path, layers, {"fc": [kernel, np.zeros(2)]}, (2,))
    assert from_keras_json(json_path, h5_path).layer("fc").weight[0, 1] == 31 / 32
    kernel[1, 0] = 2.0 ** 19 + 1
    json_path, h5_path = _write_model(tmp_path, layers, {"fc": [kernel, np.zeros(2)]}, (2,))
    with pytest.raises(UnsupportedLayerError, match=r"'fc'.*kernel: quantized_bits of 524289\.0 \(index \(1, 0\)\) "
                                                    r"is 1\.0 in QKeras"):
        from_keras_json(json_path, h5_path)


@pytest.mark.parametrize("quantizer, message", [
    ({"class_name": "quantized_po2", "config": {"bits": 4, "quadratic_approximation": True}}, "quadratic"),
    ({"class_name": "binary", "config": {}}, "'binary' is not supported"),
    (_bits(4, 0, alpha="auto_po2"), "alpha='auto_po2'"),
    ("quantized_bits(4, 0, __import__('os'))", "not literals"),
])
def test_unsupported_quantizers_are_named(tmp_path, quantizer, message):
    layers = [{"class_name": "QDense", "config": {"name": "fc", "units": 2, "kernel_quantizer": quantizer,
                                                  "bias_quantizer": _bits(4, 0), "activation": "linear"}}]
    json_path, h5_path = _write_model(tmp_path, layers, {"fc": [np.ones((3, 2)), np.zeros(2)]}, (3,))
    with pytest.raises(UnsupportedLayerError, match=rf"'fc'.*{message}"):
        from_keras_json(json_path, h5_path)


def test_a_float_dense_in_a_quantized_model_is_refused(tmp_path):
    layers = [{"class_name": "QDense", "config": {"name": "fc", "units": 2, "kernel_quantizer": _bits(4, 0),
                                                  "bias_quantizer": _bits(4, 0)}},
              {"class_name": "Dense", "config": {"name": "plain", "units": 2}}]
    json_path, h5_path = _write_model(tmp_path, layers, {"fc": [np.ones((3, 2)), np.zeros(2)],
                                                         "plain": [np.ones((2, 2)), np.zeros(2)]}, (3,))
    with pytest.raises(UnsupportedLayerError, match="'plain'.*float weights"):
        from_keras_json(json_path, h5_path)



def test_an_undeclared_input_type_is_calibrated_and_stays_exact(tmp_path):
    """No quantizer reads the 3-layer model's input: without calibration it is hls4ml's
    default ap_fixed<16,6>; with calibration inputs 16 bits with the integer bits their
    range needs (as a float model's input), and the export still equals QKeras on them."""
    graph = from_keras_json(JSON, WEIGHTS)
    assert str(graph.input_t) == "fixed<16,6,RND,SAT>"
    x = np.random.default_rng(5).standard_normal((20, *graph.input_shape)) * 1.5  # |x| < 8: 4 integer bits
    out = export_model(graph, tmp_path / "out", x, options=ExportOptions(), source=str(JSON))
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and report["input_type"] == "fixed<16,4,RND,SAT>"
    vectors = read_vectors(out)
    real_x = np.ldexp(vectors["x_int"].astype(np.float64), -12)
    expected = qkeras_forward(JSON, WEIGHTS, real_x.reshape(len(x), -1), [])
    assert np.array_equal(to_real(vectors["y_int"], graph.output_t).reshape(expected.shape), expected)
