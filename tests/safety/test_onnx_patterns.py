"""What other exporters write: Transposes of the layout (keras2onnx, tf2onnx), auto_pad, nodes
out of order, shape subgraphs (torch's exporters with a dynamic batch), a reshaped constant
bias, torch's old Unsqueeze -> BatchNormalization -> Squeeze; each model built here, equal to
onnxruntime in float and bit-exact once exported; messages name unnamed nodes by index."""

import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.pipeline import load_model
from hwprune.quant.calibrate import float_forward

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _ort(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def _save(tmp_path, name, nodes, initializers, in_shape, out_shape, opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _f32(rng, *shape, scale=0.5):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def keras2onnx_style_cnn(tmp_path, auto_pad="SAME_UPPER", name="k2o"):
    """NHWC input, Transpose to NCHW, a stride-2 Conv with auto_pad (asymmetric for SAME), its
    bias in an Add of a Reshape of a constant (tf2onnx), Relu, Transpose back to NHWC,
    Reshape to (-1, features) as Keras's Flatten, MatMul + Add, Softmax."""
    rng = np.random.default_rng(0)
    out = {"SAME_UPPER": 3, "SAME_LOWER": 3, "VALID": 2}[auto_pad]
    features = out * out * 4
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2], name="transpose_in"),
        helper.make_node("Conv", ["t0", "w"], ["c0"], auto_pad=auto_pad, strides=[2, 2], kernel_shape=[3, 3],
                         name="conv"),
        helper.make_node("Reshape", ["b", "b_shape"], ["b4"], name="bias_reshape"),
        helper.make_node("Add", ["c0", "b4"], ["c1"], name="conv_bias"),
        helper.make_node("Relu", ["c1"], ["r0"], name="relu"),
        helper.make_node("Transpose", ["r0"], ["t1"], perm=[0, 2, 3, 1], name="transpose_out"),
        helper.make_node("Reshape", ["t1", "flat"], ["f0"], name="flatten"),
        helper.make_node("MatMul", ["f0", "w2"], ["m0"], name="dense"),
        helper.make_node("Add", ["m0", "b2"], ["logits"], name="dense_bias"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax"),
    ]
    inits = {"w": _f32(rng, 4, 2, 3, 3), "b": _f32(rng, 4), "b_shape": np.array([1, 4, 1, 1], np.int64),
             "flat": np.array([-1, features], np.int64), "w2": _f32(rng, features, 5, scale=0.3),
             "b2": _f32(rng, 5)}
    return _save(tmp_path, name, nodes, inits, ["N", 6, 6, 2], ["N", 5])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_keras2onnx_layout_and_auto_pad_equal_onnxruntime_and_export_bit_exact(auto_pad, tmp_path, run):
    path = keras2onnx_style_cnn(tmp_path, auto_pad)
    graph = load_model(path)
    assert graph.input_layout == "channels_last" and graph.source_input_shape == (6, 6, 2)
    assert [l.kind for l in graph.layers] == ["conv2d", "relu", "flatten", "dense", "softmax"]
    x = np.random.default_rng(1).normal(size=(16, 6, 6, 2))
    logits = float_forward(graph, x)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.abs(probabilities - _ort(path, x)).max() < 1e-5
    if auto_pad != "SAME_UPPER":
        return  # one export is enough to show the layout reaches the C bit for bit
    np.save(tmp_path / "x.npy", x)
    code, _, err = run("export", path, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 0 and "bit-exact" in err, err


def test_conv1d_transposed_at_input_and_before_flatten(tmp_path):
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["t0", "w", "b"], ["c0"], auto_pad="VALID", kernel_shape=[3]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Transpose", ["r0"], ["t1"], perm=[0, 2, 1]),
        helper.make_node("Flatten", ["t1"], ["f0"]),
        helper.make_node("Gemm", ["f0", "w2", "b2"], ["y"], transB=1),
    ]
    path = _save(tmp_path, "c1", nodes, {"w": _f32(rng, 3, 2, 3), "b": _f32(rng, 3), "w2": _f32(rng, 4, 18),
                                          "b2": _f32(rng, 4)}, ["N", 8, 2], ["N", 4])
    graph = load_model(path)
    x = np.random.default_rng(3).normal(size=(10, 8, 2))
    assert graph.source_input_shape == (8, 2)
    assert np.abs(float_forward(graph, x) - _ort(path, x)).max() < 1e-5


def test_nodes_out_of_order_are_sorted_and_a_cycle_is_one_line(tmp_path):
    path = keras2onnx_style_cnn(tmp_path)
    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    random.Random(0).shuffle(nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    shuffled = tmp_path / "shuffled.onnx"
    onnx.save(model, str(shuffled))
    x = np.random.default_rng(1).normal(size=(4, 6, 6, 2))
    assert np.array_equal(float_forward(load_model(shuffled), x), float_forward(load_model(path), x))
    loop = [helper.make_node("Relu", ["x_and_b"], ["a"], name="first"),
            helper.make_node("Add", ["a", "x"], ["x_and_b"], name="second"),
            helper.make_node("Relu", ["a"], ["y"], name="last")]
    with pytest.raises(ModelError, match=r"cycle: node 'first' \(Relu\)") as caught:
        load_model(_save(tmp_path, "cycle", loop, {}, ["N", 3], ["N", 3]))
    assert "\n" not in str(caught.value)


def test_messages_name_an_unnamed_node_by_index_and_op(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], transB=1), helper.make_node("Softplus", ["h"], ["y"])]
    path = _save(tmp_path, "softplus", nodes, {"w": np.ones((3, 4), np.float32)}, ["N", 4], ["N", 3])
    with pytest.raises(UnsupportedLayerError, match=r"node #1 \(Softplus, unnamed\): op type 'Softplus' is not supported"):
        load_model(path)


def test_pooling_with_asymmetric_auto_pad_names_auto_pad(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER",
                              name="pool")]
    path = _save(tmp_path, "pool", nodes, {}, ["N", 1, 5, 5], ["N", 1, 3, 3])
    with pytest.raises(UnsupportedLayerError, match=r"'pool' \(MaxPool\).*auto_pad=SAME_UPPER \(pads \[0, 0, 1, 1\]\)"):
        load_model(path)


@pytest.mark.parametrize("opset", [11, 13])
def test_torch_old_batchnorm1d_export_unsqueeze_batchnorm_squeeze(opset, tmp_path):
    """Unnamed nodes as torch 1.x wrote them; axes an attribute before opset 13, an input after."""
    rng = np.random.default_rng(4)
    axes = dict(axes=[2]) if opset == 11 else {}
    extra = [] if opset == 11 else ["axes"]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
             helper.make_node("Unsqueeze", ["h", *extra], ["u"], **axes),
             helper.make_node("BatchNormalization", ["u", "scale", "shift", "mean", "var"], ["n"], epsilon=1e-5),
             helper.make_node("Squeeze", ["n", *extra], ["s"], **axes),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    inits = {"w": _f32(rng, 6, 5), "b": _f32(rng, 6), "scale": _f32(rng, 6) + 1, "shift": _f32(rng, 6),
             "mean": _f32(rng, 6), "var": np.abs(_f32(rng, 6)) + 0.5, "w2": _f32(rng, 3, 6), "b2": _f32(rng, 3)}
    if opset == 13:
        inits["axes"] = np.array([2], np.int64)
    path = _save(tmp_path, f"bn{opset}", nodes, inits, ["N", 5], ["N", 3], opset)
    graph = load_model(path)
    assert [l.kind for l in graph.layers] == ["dense", "relu", "dense"]  # the BatchNorm folded
    x = np.random.default_rng(5).normal(size=(12, 5))
    assert np.abs(float_forward(graph, x) - _ort(path, x)).max() < 1e-5


class _Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))  # a run-time shape with a dynamic batch


@pytest.mark.parametrize("dynamo", [False, True])
def test_torch_exports_with_a_dynamic_batch_fold_their_shape_subgraphs(dynamo, tmp_path, run):
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = _Cnn().eval()
    path = tmp_path / f"cnn_dynamo{int(dynamo)}.onnx"
    kwargs = dict(dynamic_shapes={"x": {0: torch.export.Dim("batch")}}) if dynamo else \
        dict(dynamic_axes={"x": {0: "batch"}}, opset_version=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 2, 4, 4),), str(path), dynamo=dynamo, input_names=["x"], **kwargs)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    if not dynamo:
        assert {"Shape", "Gather", "Concat"} <= set(ops), ops
    graph = load_model(path)
    x = np.random.default_rng(6).normal(size=(8, 2, 4, 4))
    assert np.abs(float_forward(graph, x) - _ort(path, x)).max() < 1e-5
    np.save(tmp_path / "x.npy", x)
    code, _, err = run("export", path, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 0 and "bit-exact" in err, err


def _onnxmltools_conv1d(tmp_path, batch):
    """OnnxMLTools 1.3's Keras Conv1D model: NLC input with the batch fixed at 1, Transposes
    around the Conv, and Keras's Flatten written as ONNX Flatten with axis=0."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 2, 1], name="Transpose"),
        helper.make_node("Conv", ["t0", "w", "b"], ["c0"], kernel_shape=[4], pads=[1, 2], name="Conv1D__"),
        helper.make_node("Relu", ["c0"], ["r0"], name="Relu"),
        helper.make_node("Transpose", ["r0"], ["t1"], perm=[0, 2, 1], name="Transpose5"),
        helper.make_node("Flatten", ["t1"], ["f0"], axis=0, name="flatten"),
        helper.make_node("Gemm", ["f0", "w2", "b2"], ["logits"], name=""),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1, name="Softmax"),
    ]
    inits = {"w": _f32(rng, 3, 4, 4), "b": _f32(rng, 3), "w2": _f32(rng, 30, 5, scale=0.3), "b2": _f32(rng, 5)}
    return _save(tmp_path, f"omt_{batch}", nodes, inits, [batch, 10, 4], [batch, 5], opset=9)


def test_onnxmltools_flatten_axis0_with_a_batch_of_one_equals_onnxruntime(tmp_path):
    path = _onnxmltools_conv1d(tmp_path, 1)
    graph = load_model(path)
    assert [l.kind for l in graph.layers] == ["conv1d", "relu", "flatten", "dense", "softmax"]
    x = np.random.default_rng(4).normal(size=(8, 10, 4))
    logits = float_forward(graph, x)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.concatenate([_ort(path, row[None]) for row in x])  # the file takes one example at a time
    assert np.abs(probabilities - expected).max() < 1e-5
    # With a batch of N, axis=0 mixes the examples: refused, naming the node.
    with pytest.raises(UnsupportedLayerError, match=r"'flatten' \(Flatten\): only axis=1 \(or axis=0 with a batch"):
        load_model(_onnxmltools_conv1d(tmp_path, "N"))


def test_tf2onnx_reshape_of_a_one_channel_nhwc_input_is_its_transpose(tmp_path):
    """tf2onnx writes Reshape(x, [-1, 1, H, W]) for a one-channel NHWC input where a Transpose
    would do: the same order of values, so the model takes channels-last data."""
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Reshape", ["x", "to_nchw"], ["t0"], name="conv2d/BiasAdd__6"),
        helper.make_node("Conv", ["t0", "w", "b"], ["c0"], kernel_shape=[3, 3], name="conv2d"),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu"),
        helper.make_node("Transpose", ["r0"], ["t1"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Reshape", ["t1", "flat"], ["f0"], name="flatten"),
        helper.make_node("MatMul", ["f0", "w2"], ["m0"], name="dense"),
        helper.make_node("Add", ["m0", "b2"], ["y"], name="dense_bias"),
    ]
    inits = {"to_nchw": np.array([-1, 1, 5, 6], np.int64), "w": _f32(rng, 3, 1, 3, 3), "b": _f32(rng, 3),
             "flat": np.array([-1, 36], np.int64), "w2": _f32(rng, 36, 4), "b2": _f32(rng, 4)}
    path = _save(tmp_path, "tf2onnx_reshape", nodes, inits, ["N", 5, 6, 1], ["N", 4])
    graph = load_model(path)
    assert graph.input_layout == "channels_last" and graph.input_shape == (5, 6, 1)
    x = np.random.default_rng(6).normal(size=(8, 5, 6, 1))
    assert np.abs(float_forward(graph, x) - _ort(path, x)).max() < 1e-5


def test_onnxmltools_transpose_of_a_feature_vector_is_one_line(tmp_path):
    """OnnxMLTools 1.3 wraps a Keras BatchNormalization of a Dense in Transposes of the
    (1, features) tensor, which onnxruntime rejects too: refused, naming the node."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="dense"),
             helper.make_node("Transpose", ["g"], ["y"], name="Transpose")]
    path = _save(tmp_path, "omt_bn", nodes, {"w": _f32(rng, 4, 3), "b": _f32(rng, 3)}, [1, 4], [3, 1], opset=7)
    with pytest.raises(UnsupportedLayerError, match=r"'Transpose' \(Transpose\): perm=\[1, 0\] .* moves the batch"):
        load_model(path)
