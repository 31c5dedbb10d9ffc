"""A BatchNorm that cannot fold (the first layer before a conv, after an activation, before
an Add, at an output) is a per-channel affine layer of its own: its reference kernel against
exact rationals, Keras and ONNX models against Keras' predict and onnxruntime, and the
exported C bit-exact."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import numpy as np
import pytest

from hwprune import reference
from hwprune.ir import BatchNorm, Graph
from hwprune.pipeline import ExportOptions, export_model
from hwprune.quant.calibrate import float_forward
from hwprune.ir.fixed import Fixed

from oracle import cast_value, value


def test_reference_kernel_equals_exact_rationals(rng):
    in_t, scale_t, bias_t = Fixed(9, 3), Fixed(7, 2), Fixed(10, 1)
    result_t = Fixed(8, 3, rounding="RND", overflow="SAT")
    scale = rng.integers(scale_t.min_int, scale_t.max_int + 1, 5) / 2.0 ** scale_t.frac_bits
    bias = rng.integers(bias_t.min_int, bias_t.max_int + 1, 5) / 2.0 ** bias_t.frac_bits
    layer = BatchNorm("bn", scale=scale, bias=bias, scale_t=scale_t, bias_t=bias_t, result_t=result_t)
    x = rng.integers(in_t.min_int, in_t.max_int + 1, (40, 5))
    got = reference.KERNELS["batchnorm"](layer, x, in_t)
    want = [[cast_value(value(int(q), in_t) * Fraction(float(scale[c])) + Fraction(float(bias[c])), result_t)
             for c, q in enumerate(row)] for row in x]
    assert np.array_equal(got, np.array(want))
    assert len(np.unique(got)) > 20 and (got == result_t.max_int).any()  # rounding and saturation both seen


def _export_is_bit_exact(graph: Graph, x, tmp_path) -> None:
    out = export_model(graph, tmp_path / "out", x, ExportOptions())
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True
    kinds = [layer["kind"] for layer in report["layers"]]
    assert kinds.count("batchnorm") == sum(l.kind == "batchnorm" for l in graph.layers)


def test_keras_norms_that_cannot_fold(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from hwprune.frontends.keras import from_keras_model

    L = keras.layers
    x = keras.Input((6, 6, 3))
    first = L.Conv2D(4, 3, padding="same", name="conv0")(L.BatchNormalization(name="bn_first")(x))
    act = L.ReLU(name="act")(first)
    conv = L.Conv2D(4, 3, padding="same", name="conv1")(L.BatchNormalization(name="bn_after_act")(act))
    y = L.BatchNormalization(name="bn_out")(L.Add(name="add")([conv, act]))
    model = keras.Model(x, y)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.5, 2, n)])
    graph = from_keras_model(model)
    assert [l.name for l in graph.layers if l.kind == "batchnorm"] == ["bn_first", "bn_after_act", "bn_out"]
    data = rng.normal(size=(32, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(float_forward(graph, data), model.predict(data, verbose=0), rtol=1e-4, atol=1e-4)
    _export_is_bit_exact(graph, data, tmp_path)


def _onnx_model():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)

    def norm(name, x, channels):
        arrays = [rng.uniform(0.5, 2, channels), rng.normal(0, 0.5, channels), rng.normal(0, 0.5, channels),
                  rng.uniform(0.5, 2, channels)]
        inits = [numpy_helper.from_array(a.astype(np.float32), f"{name}_{k}")
                 for a, k in zip(arrays, ("scale", "bias", "mean", "var"))]
        return helper.make_node("BatchNormalization", [x, *(i.name for i in inits)], [name], name=name), inits

    n0, i0 = norm("bn_first", "x", 3)
    conv_w = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["bn_first", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["conv"], ["relu"], name="relu")
    n1, i1 = norm("bn_out", "relu", 4)
    graph = helper.make_graph([n0, conv, relu, n1], "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                       [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("bn_out", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [*i0, conv_w, *i1])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_onnx_norms_before_a_padded_conv_and_at_the_output(tmp_path):
    import onnx

    ort = pytest.importorskip("onnxruntime")
    from hwprune.frontends.onnx import load_onnx

    path = tmp_path / "bn.onnx"
    onnx.save(_onnx_model(), path)
    graph = load_onnx(path)
    assert [l.kind for l in graph.layers] == ["batchnorm", "conv2d", "relu", "batchnorm"]
    data = np.random.default_rng(2).normal(size=(16, 3, 6, 6)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = np.concatenate([session.run(None, {"x": row[None]})[0] for row in data])
    np.testing.assert_allclose(graph.to_source(float_forward(graph, data)), want, rtol=1e-4, atol=1e-4)
    _export_is_bit_exact(graph, data, tmp_path)


def test_fpga_estimate_counts_one_product_per_element(rng):
    from hwprune.fpga import estimate
    from hwprune.ir import Dense, Flatten
    from hwprune.quant.calibrate import calibrate

    chain = Graph.chain("bn", (4, 3), (BatchNorm("norm", scale=np.array([1.0, 0.75, -1.3]), bias=np.ones(3)),
                                       Flatten("flat"), Dense("fc", rng.normal(size=(2, 12)), np.zeros(2))))
    quantized = calibrate(chain, rng.normal(size=(20, 4, 3)))
    row = next(r for r in estimate(quantized).layers if r.kind == "batchnorm")
    assert sum(row.products.values()) == 12 and row.products["shift"] == 4  # scale 1.0: a wire
    assert row.lut > 0 and row.latency_cycles == 1
