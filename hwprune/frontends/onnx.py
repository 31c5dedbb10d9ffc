"""ONNX models (``.onnx``, read with the ``onnx`` package) -> float IR graphs.

An ONNX file is data: nothing in it runs, and onnxruntime is not needed. The frontend is a
table of op handlers (``OPS``): each turns one node of the chain into the torch.nn layer
that computes it (or changes the previous one: the Add after a MatMul becomes its bias),
and ``frontends.torch.from_torch`` maps those layers to the IR, so an ONNX model gets the
same layers, BatchNorm folding, channels-first to channels-last reordering and errors as
the torch model it was exported from. A new op is one handler.

Old exporters matter: opset-9 files list their initializers among the graph inputs too,
and fix the batch dimension to a number; both are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from hwprune.errors import HwpruneError, ModelError, ShapeError, UnsupportedLayerError, WeightError
from hwprune.frontends.onnx_limits import read_model
from hwprune.frontends.torch import _first_line, _torch, from_torch
from hwprune.limits import check_activations


@dataclass
class Context:
    """What a handler sees: the file, constant tensors, ranks of values, layers so far."""

    path: Path
    constants: dict[str, np.ndarray]
    ranks: dict[str, int]
    modules: list = field(default_factory=list)
    bias_pending: bool = False  # the last module is a MatMul's Linear that an Add may complete

    def const(self, node, index: int) -> Optional[np.ndarray]:
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise UnsupportedLayerError(f"{self.path}: node {node.name!r} ({node.op_type}): input {name!r} must be "
                                        "a constant (an initializer)")
        return self.constants[name]

    def rank(self, node) -> int:
        return self.ranks.get(node.input[0], 2)

    def fail(self, node, why: str):
        return UnsupportedLayerError(f"{self.path}: node {node.name!r} ({node.op_type}): {why}")


Handler = Callable[[object, dict, Context], Optional[object]]
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RuntimeError)
OPS: dict[str, Handler] = {}


def op(*names: str):
    def register(fn: Handler) -> Handler:
        for name in names:
            OPS[name] = fn
        return fn

    return register


def _t(array: np.ndarray):
    return _torch().from_numpy(np.array(array, dtype=np.float64))


def _linear(weight: np.ndarray, bias: np.ndarray):
    torch = _torch()
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(_t(weight))
        linear.bias.copy_(_t(bias))
    return linear


@op("Gemm")
def _gemm(node, attrs, ctx):
    if attrs.get("transA", 0):
        raise ctx.fail(node, "transA=1 is not supported")
    b = ctx.const(node, 1)
    weight = (b if attrs.get("transB", 0) else b.T) * attrs.get("alpha", 1.0)
    c = ctx.const(node, 2)
    bias = np.zeros(weight.shape[0]) if c is None else np.broadcast_to(c * attrs.get("beta", 1.0),
                                                                        (1, weight.shape[0])).reshape(-1)
    return _linear(weight, bias)


@op("MatMul")
def _matmul(node, attrs, ctx):
    b = ctx.const(node, 1)
    if b.ndim != 2:
        raise ctx.fail(node, f"the constant operand must be a matrix, got shape {b.shape}")
    ctx.bias_pending = True
    return _linear(b.T, np.zeros(b.shape[1]))


@op("Add")
def _add(node, attrs, ctx):
    previous = ctx.modules[-1] if ctx.modules else None
    if not ctx.bias_pending or previous is None:
        raise ctx.fail(node, "only an Add of a constant right after a MatMul (its bias) is supported")
    value = ctx.const(node, 1)
    out = previous.out_features
    try:
        bias = np.broadcast_to(value, (1, out)).reshape(-1)
    except ValueError:
        raise ctx.fail(node, f"the constant of shape {value.shape} is not a bias of {out} outputs") from None
    torch = _torch()
    with torch.no_grad():
        previous.bias.add_(_t(bias))
    return None


@op("Relu")
def _relu(node, attrs, ctx):
    return _torch().nn.ReLU()


@op("Flatten")
def _flatten(node, attrs, ctx):
    if attrs.get("axis", 1) != 1:
        raise ctx.fail(node, f"only axis=1 is supported, got {attrs.get('axis')}")
    return _torch().nn.Flatten() if ctx.rank(node) > 2 else None


@op("Reshape")
def _reshape(node, attrs, ctx):
    shape = ctx.const(node, 1)
    if shape is None or shape.size != 2:
        raise ctx.fail(node, "only a reshape to (batch, features) is supported")
    return _torch().nn.Flatten() if ctx.rank(node) > 2 else None


@op("Softmax", "LogSoftmax")
def _softmax(node, attrs, ctx):
    return _torch().nn.Softmax(dim=-1)


@op("Identity", "Dropout")
def _skip(node, attrs, ctx):
    return None


@op("BatchNormalization")
def _batch_norm(node, attrs, ctx):
    nn = _torch().nn
    scale, bias, mean, var = (ctx.const(node, i) for i in range(1, 5))
    cls = nn.BatchNorm1d if ctx.rank(node) in (2, 3) else nn.BatchNorm2d
    bn = cls(mean.shape[0], eps=float(attrs.get("epsilon", 1e-5)), dtype=_torch().float64).eval()
    torch = _torch()
    with torch.no_grad():
        bn.weight.copy_(_t(scale))
        bn.bias.copy_(_t(bias))
        bn.running_mean.copy_(_t(mean))
        bn.running_var.copy_(_t(var))
    return bn


def _symmetric_pads(node, attrs, ctx, dims: int) -> tuple:
    pads = list(attrs.get("pads", [0] * (2 * dims)))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pads[:dims] != pads[dims:]:
        raise ctx.fail(node, f"only explicit symmetric padding is supported, got pads={pads}")
    return tuple(pads[:dims])


@op("Conv")
def _conv(node, attrs, ctx):
    torch = _torch()
    weight = ctx.const(node, 1)
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D convolutions are supported, got {dims}-D")
    groups = int(attrs.get("group", 1))
    cls = torch.nn.Conv1d if dims == 1 else torch.nn.Conv2d
    bias = ctx.const(node, 2)
    conv = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
               stride=tuple(attrs.get("strides", [1] * dims)), padding=_symmetric_pads(node, attrs, ctx, dims),
               dilation=tuple(attrs.get("dilations", [1] * dims)), groups=groups, bias=bias is not None,
               dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(_t(weight))
        if bias is not None:
            conv.bias.copy_(_t(bias))
    return conv


@op("MaxPool", "AveragePool")
def _pool(node, attrs, ctx):
    nn = _torch().nn
    kernel = tuple(attrs["kernel_shape"])
    dims = len(kernel)
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D pooling is supported, got {dims}-D")
    common = dict(stride=tuple(attrs.get("strides", kernel)), padding=_symmetric_pads(node, attrs, ctx, dims),
                  ceil_mode=bool(attrs.get("ceil_mode", 0)))
    if node.op_type == "MaxPool":
        return (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(kernel, **common)
    return (nn.AvgPool1d if dims == 1 else nn.AvgPool2d)(
        kernel, count_include_pad=bool(attrs.get("count_include_pad", 0)), **common)


@op("Pad")
def _pad(node, attrs, ctx):
    """Zero padding (old exporters put one before pooling, often of nothing): dropped when
    empty, else a ZeroPad layer that ``from_torch`` folds into the convolution after it."""
    mode = attrs.get("mode", b"constant")
    pads = attrs.get("pads")
    if pads is None:
        pads = ctx.const(node, 1)
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    value = attrs.get("value", 0.0) if "value" in attrs else (ctx.const(node, 2) if len(node.input) > 2 else 0.0)
    if mode not in (b"constant", "constant") or float(np.asarray(value).reshape(-1)[0] if np.size(value) else 0.0) != 0.0:
        raise ctx.fail(node, "only zero padding is supported")
    if not any(pads):
        return None
    rank = len(pads) // 2
    begin, end = pads[:rank], pads[rank:]
    if rank not in (3, 4) or begin[:2] != [0, 0] or end[:2] != [0, 0]:
        raise ctx.fail(node, f"only padding of the spatial axes is supported, got pads={pads}")
    nn = _torch().nn
    if rank == 3:
        return nn.ZeroPad1d((begin[2], end[2]))
    return nn.ZeroPad2d((begin[3], end[3], begin[2], end[2]))


@op("GlobalAveragePool")
def _global_pool(node, attrs, ctx):
    nn = _torch().nn
    return nn.AdaptiveAvgPool1d(1) if ctx.rank(node) == 3 else nn.AdaptiveAvgPool2d(1)


def _read(path: Path):
    import onnx

    try:
        model = read_model(path)  # declared sizes and external data locations checked first
        onnx.checker.check_model(model)
    except HwpruneError:
        raise
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, ...
        raise ModelError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # ranks then default to the input's; the handlers check what they need
        pass
    return model


def onnx_to_sequential(model, path) -> tuple[object, tuple[int, ...]]:
    """The ``nn.Sequential`` an ONNX model's chain of nodes computes, and its input shape."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]  # opset 9 lists initializers here too
    if len(inputs) != 1:
        raise ModelError(f"{path}: the model takes {len(inputs)} inputs; hwprune reads models with one")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    if len(shape) < 2 or any(d is None or d <= 0 for d in shape[1:]):
        raise ModelError(f"{path}: input {inputs[0].name!r} has shape {shape}; expected (batch, features...) "
                         "with every dimension but the batch fixed")
    ranks = {inputs[0].name: len(shape)}
    for info in (*graph.value_info, *graph.output):
        if info.type.tensor_type.HasField("shape"):
            ranks[info.name] = len(info.type.tensor_type.shape.dim)
    ctx = Context(Path(path), constants, ranks)
    previous = inputs[0].name
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            value = attrs.get("value")
            if value is None:
                raise ctx.fail(node, "only a Constant with a tensor 'value' is supported")
            constants[node.output[0]] = numpy_helper.to_array(value)
            continue
        handler = OPS.get(node.op_type)
        if handler is None:
            raise UnsupportedLayerError(
                f"{path}: node {node.name!r} has op type {node.op_type!r}, which is not supported; supported op "
                f"types are {', '.join(sorted(OPS))}")
        for name in node.input:  # NaN or Inf weights: named here, by node and initializer, not as a torch module
            value = constants.get(name)
            if value is not None and value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
                index = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise WeightError(f"{path}: node {node.name!r} ({node.op_type}): initializer {name!r} has a "
                                  f"non-finite value {value[index]} at index {index}")
        data = [name for name in node.input if name and name not in constants]
        if data != [previous]:
            raise ctx.fail(node, f"its inputs {list(node.input)} do not continue a chain of layers")
        was_pending = ctx.bias_pending
        ctx.bias_pending = False
        if node.op_type == "Add":
            ctx.bias_pending = was_pending
        module = handler(node, attrs, ctx)
        if node.op_type == "Add":
            ctx.bias_pending = False
        if module is not None:
            ctx.modules.append(module)
        previous = node.output[0]
    if len(graph.output) != 1 or graph.output[0].name != previous:
        raise ModelError(f"{path}: the graph output is not the end of its chain of nodes")
    return _torch().nn.Sequential(*ctx.modules).eval(), shape[1:]


def load_onnx(path, name: str = "model"):
    """A float IR graph from an ONNX file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    model = _read(path)
    try:
        module, input_shape = onnx_to_sequential(model, path)
        graph = from_torch(module, name=name, fallback_input_shape=input_shape)
    except HwpruneError:
        raise
    except MALFORMED as exc:  # values of the wrong shape or type where a handler reads them: the file's fault
        raise ModelError(f"{path}: malformed ONNX model ({type(exc).__name__}: {_first_line(exc)[:200]})") from None
    check_activations(graph, str(path))
    if graph.source_input_shape != tuple(input_shape):
        raise ShapeError(f"{path}: the graph input is declared (N, {', '.join(map(str, input_shape))}), but its "
                         f"first layer takes (N, {', '.join(map(str, graph.source_input_shape))})")
    return graph
