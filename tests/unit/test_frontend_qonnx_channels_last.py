"""QONNX files as hls4ml's QONNX flow writes them: qonnx's channels-last Conv and MaxPool,
Quant on activations, nearest Resize, Concat, and BipolarQuant of a computed tensor (a sign
activation); checked against qonnx's own execution, value for value, and reference == host C
(and the Cortex-M4 firmware on a few vectors)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwprune import reference
from hwprune.backends.hls4ml.mappers import MAPPERS
from hwprune.cli import main
from hwprune.errors import UnsupportedLayerError
from hwprune.exportdir import read_vectors
from hwprune.frontends.onnx import load_onnx
from hwprune.ir.activations import Sign
from hwprune.pipeline import ExportOptions, export_model
from hwprune.quant.calibrate import float_forward
from hwprune.ir.fixed import to_real

pytest.importorskip("qonnx.core.onnx_exec")
from benchmarks.qonnx_oracle import qonnx_runner  # noqa: E402

GENERAL, CHANNELS_LAST = "qonnx.custom_op.general", "qonnx.custom_op.channels_last"


class Builder:
    """A QONNX graph whose Quant nodes are in qonnx's general domain, which (as in hls4ml's
    example files) the file does not import. Every tensor's shape is written in the file, as
    those files do (qonnx's shape inference needs a channels-last op's input shape)."""

    def __init__(self, x_shape):
        self.nodes, self.inits, self.count, self.shapes = [], [], 0, {"x": list(x_shape)}

    def const(self, value) -> str:
        name = f"c{len(self.inits)}"
        value = np.asarray(value, np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        self.shapes[name] = list(value.shape)
        return name

    def node(self, op_type, inputs, domain="", shape=None, **attrs) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.count}", domain=domain,
                                           **attrs))
        self.shapes[out] = list(shape) if shape is not None else self.shapes[inputs[0]]
        return out

    def quant(self, x, scale, bits, narrow=0) -> str:
        return self.node("Quant", [x, self.const(scale), self.const(0.0), self.const(bits)], GENERAL, signed=1,
                         narrow=narrow, rounding_mode="ROUND")

    def weight(self, shape, scale, seed) -> str:
        values = np.random.default_rng(seed).uniform(-1, 1, shape)
        return self.quant(self.const(values), scale, 4, narrow=1)

    def save(self, path, y_name):
        info = {name: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in self.shapes.items()}
        inner = [info[n] for n in self.shapes if n.startswith("t") and n != y_name]
        graph = helper.make_graph(self.nodes, "qonnx_test", [info["x"]], [info[y_name]], self.inits, value_info=inner)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
        return path


def _unet(path):
    """(1, 6, 6, 2) -> CL Conv 3x3 -> LeakyRelu -> CL MaxPool -> Resize x2 -> Concat with the
    pre-pool tensor -> depthwise CL Conv -> CL Conv 1x1 (float output)."""
    b = Builder([1, 6, 6, 2])
    x = b.quant("x", 0.125, 6)
    conv = b.node("Conv", [x, b.weight((4, 3, 3, 2), 0.25, 1), b.quant(b.const([0.5, -0.25, 0.125, 0.0]), 0.125, 4)],
                  CHANNELS_LAST, shape=[1, 6, 6, 4], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
    act = b.quant(b.node("LeakyRelu", [b.quant(conv, 0.25, 6)], alpha=0.1015625), 0.125, 6)
    pooled = b.quant(b.node("MaxPool", [act], CHANNELS_LAST, shape=[1, 3, 3, 4], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
                     0.125, 6)
    up = b.node("Resize", [pooled, "", b.const([1, 2, 2, 1])], shape=[1, 6, 6, 4], mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    joined = b.quant(b.node("Concat", [b.quant(up, 0.25, 5), act], shape=[1, 6, 6, 8], axis=-1), 0.25, 6)
    depthwise = b.node("Conv", [joined, b.weight((8, 3, 3, 1), 0.25, 2)], CHANNELS_LAST, kernel_shape=[3, 3],
                       pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=8)
    out = b.node("Conv", [b.quant(depthwise, 0.125, 6), b.weight((3, 1, 1, 8), 0.5, 3)], CHANNELS_LAST,
                 shape=[1, 6, 6, 3], kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1], dilations=[1, 1], group=1)
    return b.save(path, out)


def _bnn(path, scale=1.0):
    """BipolarQuant of the input (a sign), binary Dense weights, BipolarQuant of the result."""
    b = Builder([1, 5])
    x = b.node("BipolarQuant", ["x", b.const(1.0)], GENERAL)
    w = b.node("BipolarQuant", [b.const(np.random.default_rng(4).normal(size=(5, 6))), b.const(1.0)], GENERAL)
    dense = b.node("MatMul", [x, w], shape=[1, 6])
    y = b.node("BipolarQuant", [b.node("Add", [dense, b.quant(b.const([1, -1, 0, 2, -2, 1]), 1.0, 4)]),
                                b.const(scale)], GENERAL)
    return b.save(path, y)


def _assert_equal(got, expected):
    if not np.array_equal(got, expected):
        index = tuple(int(i) for i in np.argwhere(got != expected)[0])
        pytest.fail(f"{int(np.sum(got != expected))} of {got.size} values differ; first at {index}: "
                    f"hwprune {got[index]}, qonnx {expected[index]}")


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    path = _unet(tmp_path_factory.mktemp("unet") / "unet.onnx")
    shape, run = qonnx_runner(path)
    x = np.random.default_rng(0).normal(0, 1.5, (12, *shape)).astype(np.float32)
    return path, x, run(x)


def test_channels_last_model_equals_qonnx(unet):
    path, x, expected = unet
    graph = load_onnx(path)
    assert graph.input_layout == "channels_last" and graph.input_shape == (6, 6, 2)
    assert [layer.kind for layer in graph.layers if layer.kind in ("conv2d", "maxpool2d", "upsample")] == [
        "conv2d", "maxpool2d", "upsample", "conv2d", "conv2d"]
    got = to_real(reference.run(graph, reference.quantize_input(graph, x)), graph.output_t).reshape(expected.shape)
    _assert_equal(got, expected)
    assert len(np.unique(expected)) > 20  # not saturated, not all zero


def test_channels_last_export_is_bit_exact_and_equals_qonnx(unet, tmp_path):
    path, x, expected = unet
    out = export_model(path, tmp_path / "out", x, options=ExportOptions(target="stm32l4r5"))
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and {"host", "mcu"} <= set(report["engines"])  # reference == host C == M4
    y = to_real(read_vectors(out)["y_int"], load_onnx(path).output_t).reshape(expected.shape)
    _assert_equal(y, expected)


def test_sign_activation_equals_qonnx_on_host_and_m4(tmp_path):
    path = _bnn(tmp_path / "bnn.onnx", scale=0.5)
    shape, run = qonnx_runner(path)
    x = np.random.default_rng(1).normal(size=(40, *shape)).astype(np.float32)
    x[0, :3] = [0.0, -1e-6, 1e-6]  # the sign of zero (+1) and of values below the input's grid step
    expected = run(x)
    graph = load_onnx(path)
    assert [type(layer) for layer in graph.layers].count(Sign) == 2
    out = export_model(path, tmp_path / "m4", x[:6], options=ExportOptions(target="stm32l4r5"))
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and {"host", "mcu"} <= set(report["engines"])  # reference == host C == M4
    got = to_real(reference.run(graph, reference.quantize_input(graph, x)), graph.output_t)
    _assert_equal(got, expected)
    assert set(np.unique(expected)) == {-0.5, 0.5}


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not on PATH")
def test_sign_in_hls4ml_is_binary_tanh_bit_exact(tmp_path, capsys):
    pytest.importorskip("hls4ml")
    path = _bnn(tmp_path / "bnn.onnx", scale=1.0)
    np.save(tmp_path / "x.npy", np.random.default_rng(6).normal(size=(16, 5)))
    code = main(["export", str(path), "--calibration", str(tmp_path / "x.npy"), "--out", str(tmp_path / "out"),
                 "--backend", "hls4ml"])
    assert code == 0, capsys.readouterr().err
    engine = json.loads((tmp_path / "out" / "report.json").read_text())["engines"]["hls4ml"]
    assert engine["available"] and engine["bit_exact"], engine  # nnet::binary_tanh's C simulation == reference
    assert "nnet::binary_tanh" in (tmp_path / "out" / "hls4ml" / "firmware" / "bnn.cpp").read_text()


def test_sign_of_another_scale_is_one_hls4ml_refusal():
    with pytest.raises(UnsupportedLayerError, match=r"'half'.*scale 0.5 has no hls4ml equivalent"):
        MAPPERS["sign"](Sign("half", scale=0.5), _Operands(), None)


class _Operands:
    source = "x"
    shape = (4,)


def test_unknown_op_in_a_qonnx_domain_is_one_line_naming_the_node(tmp_path, capsys):
    b = Builder([1, 4])
    y = b.node("Trunc", ["x", b.const(0.25), b.const(0.0), b.const(8.0), b.const(4.0)], GENERAL)
    path = b.save(tmp_path / "trunc.onnx", y)
    code = main(["export", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "node 'Trunc_1' (Trunc)" in err and "domain 'qonnx.custom_op.general'" in err, err
    assert not (tmp_path / "out").exists()


def test_resize_of_a_channels_first_1d_tensor_is_an_upsample(tmp_path):
    """torch's nn.Upsample(scale_factor=3) of a Conv1d output (half_pixel coordinates): the
    float graph equals onnxruntime, and the export is bit-exact on the host."""
    ort = pytest.importorskip("onnxruntime")
    weight = numpy_helper.from_array(np.random.default_rng(2).normal(size=(4, 2, 3)).astype(np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 3], np.float32), "scales")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], name="up", mode="nearest")]
    graph = helper.make_graph(nodes, "up1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 15])], [weight, scales])
    path = tmp_path / "up1d.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    x = np.random.default_rng(3).normal(size=(8, 2, 5)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = np.concatenate([session.run(None, {"x": row[None]})[0] for row in x])
    ir = load_onnx(path)
    assert ir.layers[-1].kind == "upsample" and ir.layers[-1].size == (3,)
    np.testing.assert_allclose(ir.to_source(float_forward(ir, x)), expected, rtol=1e-5, atol=1e-5)
    out = export_model(path, tmp_path / "out", x, options=ExportOptions())
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] is True and "host" in report["engines"]
