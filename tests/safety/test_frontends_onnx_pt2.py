"""ONNX and torch.export models: read as data, equal to their runtimes, clean errors."""

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.frontends.onnx import OPS
from hwprune.pipeline import load_model
from hwprune.quant.calibrate import float_forward

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ort(path, x):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # opset-9 initializers-as-inputs draw a warning per tensor
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: row[None].astype(np.float32)})[0] for row in x])


@pytest.fixture(scope="module")
def opset9_mlp(tmp_path_factory):
    """An MLP exported by torch's TorchScript exporter as old tools did: opset 9, Gemm + Relu +
    Softmax, initializers listed as graph inputs, batch dimension fixed to 1."""
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 5), nn.Softmax(dim=-1)).eval()
    path = folder / "mlp.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 10),), str(path), opset_version=9, dynamo=False,
                          keep_initializers_as_inputs=True)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 9
    assert {i.name for i in proto.graph.initializer} <= {i.name for i in proto.graph.input}
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    return path


def test_opset9_torch_export_equals_onnxruntime_and_exports_bit_exact(opset9_mlp, tmp_path, run):
    graph = load_model(opset9_mlp)
    assert [l.kind for l in graph.layers] == ["dense", "relu", "dense", "softmax"]
    x = np.random.default_rng(0).normal(size=(20, 10))
    assert np.abs(_softmax(float_forward(graph, x)) - _ort(opset9_mlp, x)).max() < 1e-5
    np.save(tmp_path / "x.npy", x)
    code, _, err = run("export", opset9_mlp, "--out", tmp_path / "e", "--calibration", tmp_path / "x.npy")
    assert code == 0 and "bit-exact" in err, err
    code, out, err = run("verify", tmp_path / "e")
    assert code == 0 and "bit-exact" in out


def _model(nodes, initializers, in_shape, out_shape, opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_matmul_add_flatten_reshape_identity_built_with_helper(tmp_path):
    rng = np.random.default_rng(1)
    w1, b1, w2, b2 = rng.normal(size=(12, 7)), rng.normal(size=7), rng.normal(size=(7, 4)), rng.normal(size=(4,))
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("Identity", ["r1"], ["i1"]),
             helper.make_node("Reshape", ["i1", "shape"], ["s1"]),
             helper.make_node("Gemm", ["s1", "w2t", "b2"], ["y"], transB=1, alpha=0.5, beta=2.0)]
    model = _model(nodes, {"w1": w1, "b1": b1, "w2t": w2.T, "b2": b2, "shape": np.array([-1, 7])},
                   [1, 3, 4], [1, 4])
    model.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([-1, 7], dtype=np.int64), "shape"))
    onnx.save(model, tmp_path / "h.onnx")
    graph = load_model(tmp_path / "h.onnx")
    x = rng.normal(size=(6, 3, 4))
    assert graph.input_shape == (3, 4)
    assert np.abs(float_forward(graph, x) - _ort(tmp_path / "h.onnx", x)).max() < 1e-5


def test_unsupported_op_names_node_type_and_list(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc", transB=1),
             helper.make_node("Softplus", ["g"], ["y"], name="squash")]
    onnx.save(_model(nodes, {"w": np.ones((2, 3)), "b": np.zeros(2)}, [1, 3], [1, 2]), tmp_path / "t.onnx")
    with pytest.raises(UnsupportedLayerError) as info:
        load_model(tmp_path / "t.onnx")
    message = str(info.value)
    assert "'squash'" in message and "'Softplus'" in message and all(op in message for op in ("Gemm", "MatMul", "Relu"))
    assert {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization"} <= set(OPS)


def test_truncated_and_garbage_onnx(opset9_mlp, tmp_path):
    data = opset9_mlp.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot onnx at all" * 10)
    for name in ("cut.onnx", "junk.onnx"):
        with pytest.raises(ModelError, match="not a valid ONNX model"):
            load_model(tmp_path / name)


def test_pt2_equals_torch_and_folds_batchnorm(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(),
                          nn.Linear(16, 4)).eval()
    with torch.no_grad():
        model[2].running_mean.normal_()
        model[2].running_var.uniform_(0.5, 2.0)
    torch.export.save(torch.export.export(model, (torch.randn(2, 2, 4),)), tmp_path / "m.pt2")
    graph = load_model(tmp_path / "m.pt2")
    assert [l.kind for l in graph.layers] == ["flatten", "dense", "relu", "dense"]
    x = np.random.default_rng(0).normal(size=(10, 2, 4))
    expected = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.abs(float_forward(graph, x) - expected).max() < 1e-5


def test_pt2_unsupported_module_and_garbage(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)).eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 4),)), tmp_path / "t.pt2")
    with pytest.raises(UnsupportedLayerError, match=r"\(aten\.tanh\.default\) is not supported; supported operators"):
        load_model(tmp_path / "t.pt2")
    (tmp_path / "g.pt2").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a readable torch.export program"):
        load_model(tmp_path / "g.pt2")


CONV_MODELS = {
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Conv2d(4, 3, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3, 5)),
               (2, 10, 10)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(3, 4, 3), nn.ReLU(), nn.AvgPool1d(2), nn.Conv1d(4, 4, 3),
                                     nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 2)), (3, 16)),
}


@pytest.mark.parametrize("kind", list(CONV_MODELS))
def test_conv_models_from_onnx_and_pt2(kind, tmp_path):
    """Conv, pooling, BatchNormalization and the empty Pad old exporters put before pooling,
    against onnxruntime (ONNX) and torch (.pt2); inputs stay channels-first as in the source."""
    import warnings

    make, shape = CONV_MODELS[kind]
    torch.manual_seed(0)
    model = make().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, *shape),), str(tmp_path / "c.onnx"), opset_version=9, dynamo=False,
                          keep_initializers_as_inputs=True)
    torch.export.save(torch.export.export(model, (torch.randn(2, *shape),)), tmp_path / "c.pt2")
    x = np.random.default_rng(0).normal(size=(6, *shape))
    from_onnx, from_pt2 = load_model(tmp_path / "c.onnx"), load_model(tmp_path / "c.pt2")
    assert kind in [l.kind for l in from_onnx.layers] and kind in [l.kind for l in from_pt2.layers]
    assert np.abs(float_forward(from_onnx, x) - _ort(tmp_path / "c.onnx", x)).max() < 1e-5
    expected = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.abs(float_forward(from_pt2, x) - expected).max() < 1e-5
