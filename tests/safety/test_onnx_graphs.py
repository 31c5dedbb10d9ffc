"""ONNX graphs with branches (a residual Add, a Concat of two paths, a Mul of two tensors,
ReLU6 as Clip, a depthwise Conv): translated straight into IR layers with named inputs, equal
to onnxruntime in float and bit-exact once exported; refusals name the node."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import UnsupportedLayerError
from hwprune.pipeline import load_model
from hwprune.quant.calibrate import float_forward

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _ort(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


class Branchy(nn.Module):
    """conv-BN-ReLU6, a residual Add, a depthwise conv, a Concat of two paths, a Mul of two
    tensors, global pooling and a Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Conv2d(4, 4, 3, padding=1)
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.side = nn.Conv2d(4, 2, 1)
        self.gate = nn.Conv2d(4, 6, 1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        h = nn.functional.relu6(self.bn(self.stem(x)))
        h = torch.relu(self.body(h) + h)
        joined = torch.cat([self.depthwise(h), self.side(h)], dim=1)
        y = joined * self.gate(h)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


@pytest.fixture(scope="module", params=[False, True], ids=["torchscript", "dynamo"])
def branchy(request, tmp_path_factory):
    if request.param:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = Branchy().eval()
    with torch.no_grad():
        model.bn.running_mean.normal_(0, 0.3)
        model.bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("onnx") / "branchy.onnx"
    kwargs = dict(dynamic_shapes={"x": {0: torch.export.Dim("batch")}}) if request.param else \
        dict(dynamic_axes={"x": {0: "batch"}}, opset_version=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 6, 6),), str(path), dynamo=request.param, input_names=["x"],
                          **kwargs)
    return path, request.param


def test_a_branching_torch_export_equals_onnxruntime_and_exports_bit_exact(branchy, tmp_path, run):
    branchy, dynamo = branchy
    graph = load_model(branchy)
    kinds = [layer.kind for layer in graph.layers]
    assert {"add", "concatenate", "multiply", "clip"} <= set(kinds) and "batchnorm" not in kinds
    assert any(getattr(layer, "depthwise", False) for layer in graph.layers)
    assert not graph.is_chain and graph.input_layout == "channels_first"
    x = np.random.default_rng(0).normal(size=(12, 3, 6, 6))
    assert np.abs(float_forward(graph, x) - _ort(branchy, x)).max() < 1e-5
    if not dynamo:  # one export shows the graph reaches the C bit for bit
        np.save(tmp_path / "x.npy", x)
        code, _, err = run("export", branchy, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
        assert code == 0 and "bit-exact" in err, err


class SqueezeExcite(nn.Module):
    """A per-channel gate from a 1x1 conv over global pooling (its (N, C, 1, 1) output held as
    (C,) and reshaped where a conv or the Mul needs it), a BatchNorm after the Mul that folds
    through Flatten into the Linear after it (columns in the IR's order), a BatchNorm1d after a
    ReLU that folds into the next Linear."""

    def __init__(self):
        super().__init__()
        self.conv, self.gate = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.bn, self.bn1 = nn.BatchNorm2d(4), nn.BatchNorm1d(3)
        self.fc, self.fc2 = nn.Linear(4 * 5 * 5, 3), nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        y = self.bn(h * torch.relu(self.gate(nn.functional.adaptive_avg_pool2d(h, 1))))
        return self.fc2(self.bn1(torch.relu(self.fc(torch.flatten(y, 1)))))


def test_squeeze_excite_and_waiting_batchnorms_equal_onnxruntime_and_export_bit_exact(tmp_path, run):
    torch.manual_seed(1)
    model = SqueezeExcite().eval()
    with torch.no_grad():
        for bn in (model.bn, model.bn1):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "se.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 2, 5, 5),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=13)
    graph = load_model(path)
    assert [l.kind for l in graph.layers].count("reshape") == 2 and "multiply" in [l.kind for l in graph.layers]
    x = np.random.default_rng(2).normal(size=(12, 2, 5, 5))
    assert np.abs(float_forward(graph, x) - _ort(path, x)).max() < 1e-5
    np.save(tmp_path / "x.npy", x)
    code, _, err = run("export", path, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 0 and "bit-exact" in err, err


def _save(tmp_path, name, nodes, initializers, in_shape, out_shape):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()])
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    return path


def test_dense_branches_with_clip_concat_and_a_dead_node(tmp_path, run):
    """Two Gemm paths from one input, Clip(0, 6), Relu, their Add, Mul and Concat; a node no
    output reads (Softplus, unsupported) is never translated."""
    rng = np.random.default_rng(1)
    f = lambda *s: (rng.normal(size=s) * 0.5).astype(np.float32)  # noqa: E731
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["a"], transB=1, name="left"),
             helper.make_node("Clip", ["a", "lo", "hi"], ["a6"], name="relu6"),
             helper.make_node("MatMul", ["x", "w2"], ["m"], name="right"),
             helper.make_node("Add", ["b2", "m"], ["b"], name="right_bias"),
             helper.make_node("Relu", ["b"], ["br"], name="right_relu"),
             helper.make_node("Add", ["a6", "br"], ["s"], name="sum"),
             helper.make_node("Mul", ["s", "a"], ["p"], name="product"),
             helper.make_node("Concat", ["p", "br"], ["c"], axis=1, name="join"),
             helper.make_node("Softplus", ["c"], ["unused"], name="dead"),
             helper.make_node("Gemm", ["c", "w3", "b3"], ["y"], transB=1, name="head")]
    inits = {"w1": f(6, 5), "b1": f(6), "lo": np.float32(0), "hi": np.float32(6), "w2": f(5, 6), "b2": f(6),
             "w3": f(3, 12), "b3": f(3)}
    path = _save(tmp_path, "dense", nodes, inits, ["N", 5], ["N", 3])
    graph = load_model(path)
    assert {l.name: l.kind for l in graph.layers} == {
        "left": "dense", "relu6": "clip", "right": "dense", "right_relu": "relu", "sum": "add",
        "product": "multiply", "join": "concatenate", "head": "dense"}
    assert graph.layer("product").inputs == ("sum", "left")
    x = rng.normal(size=(32, 5)) * 3
    assert np.abs(float_forward(graph, x) - _ort(path, x)).max() < 1e-5
    np.save(tmp_path / "x.npy", x)
    code, _, err = run("export", path, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 0 and "bit-exact" in err, err


@pytest.mark.parametrize("node, inits, message", [
    (helper.make_node("Concat", ["x", "x"], ["y"], axis=0), {}, r"node #0 \(Concat, unnamed\): axis=0"),
    (helper.make_node("Mul", ["x", "k"], ["y"], name="scale"), {"k": np.float32(2)},
     r"node 'scale' \(Mul\): a Mul by a constant is not supported"),
    (helper.make_node("Add", ["x", "k"], ["y"], name="shift"), {"k": np.ones(4, np.float32)},
     r"node 'shift' \(Add\): an Add of a constant is supported as the bias"),
    (helper.make_node("Clip", ["x", "", "k"], ["y"], name="cap"), {"k": np.float32(6)},
     r"node 'cap' \(Clip\): min=None, max=6.0"),
], ids=["concat-batch", "mul-constant", "add-constant", "clip-one-sided"])
def test_refusals_name_the_node(node, inits, message, tmp_path, run):
    out = [4, 8] if node.op_type == "Concat" else ["N", 4]
    path = _save(tmp_path, "bad", [node], inits, [4, 4] if node.op_type == "Concat" else ["N", 4], out)
    with pytest.raises(UnsupportedLayerError, match=message):
        load_model(path)
    np.save(tmp_path / "x.npy", np.zeros((4, 4)))
    code, _, err = run("export", path, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "e").exists(), err
