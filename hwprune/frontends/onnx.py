"""ONNX models (``.onnx``, read with the ``onnx`` package) -> float IR graphs.

An ONNX file is data: nothing in it runs, and onnxruntime is not needed. The frontend is a
table of op handlers (``OPS``): each turns one node of the chain into the torch.nn layer
that computes it (or changes the previous one: the Add after a MatMul becomes its bias),
and ``frontends.torch.from_torch`` maps those layers to the IR, so an ONNX model gets the
same layers, BatchNorm folding, channels-first to channels-last reordering and errors as
the torch model it was exported from. A new op is one handler.

Old exporters matter: opset-9 files list their initializers among the graph inputs too,
and fix the batch dimension to a number; both are accepted. Before the walk, nodes are put
in topological order and constant subgraphs folded (``onnx_graph``). Layout: a Transpose
from channels-last at the input (keras2onnx, tf2onnx) makes the model take channels-last
data; a Transpose to channels-last before Flatten means the Linear after it reads features
in the IR's own order. torch's old BatchNorm1d export (``Unsqueeze`` -> BatchNormalization ->
``Squeeze``) is a BatchNorm. Spatial ops are in ``onnx_spatial``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hwprune.errors import HwpruneError, ModelError, ShapeError, UnsupportedLayerError, WeightError
from hwprune.frontends import onnx_activations, onnx_spatial  # noqa: F401  (register their handlers)
from hwprune.frontends.onnx_graph import OPS, Context, fold, label, op, topological_order
from hwprune.frontends.onnx_limits import read_model
from hwprune.frontends.torch import _first_line, _torch, from_torch
from hwprune.frontends.torch_spatial import flatten_permutation
from hwprune.limits import check_activations

#: What a handler raises on values of the wrong shape or type: the file's fault, a ModelError.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RuntimeError)


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
        raise ctx.fail(node, "only an Add of a constant right after a MatMul or Conv (its bias) is supported")
    value = ctx.const(node, 1)
    torch = _torch()
    out = previous.out_features if isinstance(previous, torch.nn.Linear) else previous.out_channels
    shape = (1, out) if isinstance(previous, torch.nn.Linear) else (1, out, *([1] * (previous.weight.ndim - 2)))
    try:
        if np.broadcast_shapes(value.shape, shape) != shape:
            raise ValueError
        bias = np.broadcast_to(value, shape).reshape(out, -1)[:, 0]
    except ValueError:
        raise ctx.fail(node, f"the constant of shape {value.shape} is not a bias of {out} outputs") from None
    with torch.no_grad():
        previous.bias.add_(_t(bias))
    return None


@op("Relu")
def _relu(node, attrs, ctx):
    return _torch().nn.ReLU()


def _flatten_of(node, ctx):
    """nn.Flatten for a tensor with spatial axes (None for one that is flat already); after a
    Transpose to channels-last, the next Linear reads the IR's order (``permute_next_linear``)."""
    if ctx.flatten_channels_last is not None:
        ctx.permute_next_linear, ctx.flatten_channels_last = ctx.flatten_channels_last, None
    return _torch().nn.Flatten() if ctx.rank(node) > 2 else None


@op("Flatten")
def _flatten(node, attrs, ctx):
    if attrs.get("axis", 1) != 1:
        raise ctx.fail(node, f"only axis=1 is supported, got {attrs.get('axis')}")
    return _flatten_of(node, ctx)


@op("Reshape")
def _reshape(node, attrs, ctx):
    shape = ctx.const(node, 1)
    if shape is None or shape.size != 2:
        raise ctx.fail(node, f"only a reshape to (batch, features) is supported, got shape "
                             f"{None if shape is None else shape.tolist()}")
    return _flatten_of(node, ctx)


@op("Transpose")
def _transpose(node, attrs, ctx):
    """At the input from channels-last (NHWC -> NCHW, NLC -> NCL), or to channels-last
    right before Flatten: both are layouts the IR has natively, so nothing is computed."""
    shape = ctx.shape(node)
    rank = len(shape) if shape is not None else len(attrs.get("perm", []))
    perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
    to_first = [0, rank - 1, *range(1, rank - 1)]
    to_last = [0, *range(2, rank), 1]
    if rank in (3, 4) and perm == to_first and not ctx.modules and node.input[0] == ctx.graph_input:
        ctx.input_channels_last = True
        return None
    if rank in (3, 4) and perm == to_last and shape is not None and all(d is not None for d in shape[1:]):
        ctx.flatten_channels_last = (*shape[2:], shape[1])  # the IR's (H, W, C) order
        return None
    raise ctx.fail(node, f"perm={perm} on a tensor of shape {shape}: a Transpose is supported at the input from "
                         f"channels-last (perm={to_first}) or to channels-last right before Flatten (perm={to_last})")


@op("Unsqueeze")
def _unsqueeze(node, attrs, ctx):
    axes = attrs.get("axes")
    axes = [int(a) for a in np.asarray(ctx.const(node, 1) if axes is None else axes).reshape(-1)]
    rank = ctx.rank(node)
    axes = sorted(a % (rank + len(axes)) for a in axes)
    if ctx.unsqueezed is not None or any(a < rank for a in axes):
        raise ctx.fail(node, f"axes={axes}: only trailing axes around a BatchNormalization (Unsqueeze, "
                             "BatchNormalization, Squeeze) are supported")
    ctx.unsqueezed = tuple(axes)
    return None


@op("Squeeze")
def _squeeze(node, attrs, ctx):
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node, 1)
    shape = ctx.shape(node)
    rank = ctx.rank(node)
    axes = None if axes is None else sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))
    if ctx.unsqueezed is not None and axes in (None, list(ctx.unsqueezed)):
        ctx.unsqueezed = None
        return None
    if ctx.unsqueezed is None and shape is not None and axes is not None and axes == list(range(2, rank)) \
            and all(shape[a] == 1 for a in axes):
        return _torch().nn.Flatten()  # (N, C, 1, 1) after a global pooling: the same as Flatten
    raise ctx.fail(node, f"axes={axes} on a tensor of shape {shape}: only the Squeeze that undoes an Unsqueeze "
                         "around a BatchNormalization, or of the unit spatial axes after pooling, is supported")


@op("Softmax", "LogSoftmax")
def _softmax(node, attrs, ctx):
    nn = _torch().nn
    return (nn.LogSoftmax if node.op_type == "LogSoftmax" else nn.Softmax)(dim=-1)


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


def _read(path: Path):
    """The model with its nodes in topological order, checked, with shapes inferred, and the
    file's index of every node (for messages)."""
    import onnx

    try:
        model = read_model(path)  # declared sizes and external data locations checked first
        order = _sort_nodes(model, path)
        onnx.checker.check_model(model)
    except HwpruneError:
        raise
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except ModelError:
        raise
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, ...
        raise ModelError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shapes then stay unknown; the handlers check what they need
        pass
    return model, order


def _sort_nodes(model, path) -> list[int]:
    """Put the nodes in topological order (onnxruntime runs files whose nodes are not; the
    checker refuses them); the file's index of each node, in the new order."""
    graph = model.graph
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    order = topological_order(graph.node, known, path)
    if order != sorted(order):
        nodes = [graph.node[i] for i in order]
        copies = [type(n)() for n in nodes]
        for copy, node in zip(copies, nodes):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)
    return order


def _shapes(graph, constants) -> dict:
    shapes = {name: tuple(value.shape) for name, value in constants.items()}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.tensor_type.HasField("shape"):
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                      for d in info.type.tensor_type.shape.dim)
    return shapes


def onnx_to_sequential(model, path, order=None) -> tuple[object, tuple[int, ...], bool]:
    """The ``nn.Sequential`` an ONNX model's chain of nodes computes, its input shape, and
    whether it takes channels-last data (a Transpose at its input)."""
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
    shapes = _shapes(graph, constants)
    ctx = Context(Path(path), constants, shapes, graph_input=inputs[0].name)
    nodes = list(zip(order if order is not None else range(len(graph.node)), graph.node))
    attrs_of = [{a.name: helper.get_attribute_value(a) for a in node.attribute} for _, node in nodes]
    previous = inputs[0].name
    for position in fold(nodes, attrs_of, constants, shapes, path):
        (ctx.index, node), attrs = nodes[position], attrs_of[position]
        handler = OPS.get(node.op_type)
        if handler is None:
            raise UnsupportedLayerError(
                f"{ctx.where(node)}: op type {node.op_type!r} is not supported; supported op types are "
                f"{', '.join(sorted(OPS))}")
        for name in node.input:  # NaN or Inf weights: named here, by node and initializer, not as a torch module
            value = constants.get(name)
            if value is not None and value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
                index = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise WeightError(f"{ctx.where(node)}: initializer {name!r} has a non-finite value {value[index]} "
                                  f"at index {index}")
        data = [name for name in node.input if name and name not in constants]
        if data != [previous]:
            raise ctx.fail(node, f"its inputs {list(node.input)} do not continue a chain of layers")
        if ctx.unsqueezed is not None and node.op_type not in ("BatchNormalization", "Squeeze", "Identity", "Dropout"):
            raise ctx.fail(node, "only a BatchNormalization may come between an Unsqueeze and its Squeeze")
        pending = ctx.bias_pending
        ctx.bias_pending = False
        if node.op_type == "Add":
            ctx.bias_pending = pending
        module = handler(node, attrs, ctx)
        if node.op_type == "Add":
            ctx.bias_pending = False
        for one in module if isinstance(module, list) else [module] if module is not None else []:
            ctx.modules.append(_reordered(one, ctx, node))
        previous = node.output[0]
    if len(graph.output) != 1 or graph.output[0].name != previous:
        raise ModelError(f"{path}: the graph output is not the end of its chain of nodes")
    for what, state in (("a Transpose to channels-last is not followed by Flatten", ctx.flatten_channels_last),
                        ("an Unsqueeze is not undone by a Squeeze", ctx.unsqueezed)):
        if state is not None:
            raise UnsupportedLayerError(f"{path}: {what}")
    return _torch().nn.Sequential(*ctx.modules).eval(), shape[1:], ctx.input_channels_last


def _reordered(module, ctx, node):
    """A Linear after a channels-last Flatten, its columns put in torch's channels-first order
    (which ``from_torch`` permutes back to the IR's), so it reads the features as exported."""
    torch = _torch()
    if ctx.permute_next_linear is None or isinstance(module, (torch.nn.ReLU, torch.nn.Flatten, torch.nn.Dropout)):
        return module
    if not isinstance(module, torch.nn.Linear):
        raise ctx.fail(node, "a Flatten after a Transpose to channels-last must be followed by a Gemm or MatMul")
    perm = flatten_permutation(ctx.permute_next_linear)
    ctx.permute_next_linear = None
    with torch.no_grad():
        weight = module.weight.detach().clone()
        module.weight[:, torch.from_numpy(perm)] = weight
    return module


def load_onnx(path, name: str = "model"):
    """A float IR graph from an ONNX file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    model, order = _read(path)
    try:
        module, input_shape, channels_last = onnx_to_sequential(model, path, order)
        if channels_last:  # from_torch reads the chain channels-first; the data is channels-last
            input_shape = (input_shape[-1], *input_shape[:-1])
        graph = from_torch(module, name=name, fallback_input_shape=input_shape)
    except HwpruneError:
        raise
    except MALFORMED as exc:  # values of the wrong shape or type where a handler reads them: the file's fault
        raise ModelError(f"{path}: malformed ONNX model ({type(exc).__name__}: {_first_line(exc)[:200]})") from None
    if channels_last:
        if graph.input_layout != "channels_first":
            raise UnsupportedLayerError(f"{path}: a Transpose at the input is supported before a convolution or "
                                        "pooling only")
        graph = graph.replace(input_layout="channels_last")
        input_shape = (*input_shape[1:], input_shape[0])
    check_activations(graph, str(path))
    if graph.source_input_shape != tuple(input_shape):
        raise ShapeError(f"{path}: the graph input is declared (N, {', '.join(map(str, input_shape))}), but its "
                         f"first layer takes (N, {', '.join(map(str, graph.source_input_shape))})")
    return graph
