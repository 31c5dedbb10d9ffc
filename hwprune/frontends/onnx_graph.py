"""ONNX graphs made ready for the walk of ``frontends.onnx``: nodes in topological
order, constant subgraphs folded, every node labelled for messages.

Exporters write more than a chain of layers. onnxruntime runs nodes in any order, so files
whose nodes are out of order exist (and fail ``onnx.checker``): they are sorted first, and a
cycle is one line naming a node on it. torch's exporters compute a Reshape's target shape
at run time (``Shape`` -> ``Gather`` -> ``Unsqueeze`` -> ``Concat``) and tf2onnx reshapes
constant biases: every node whose inputs are all constants is evaluated here with numpy
(a fixed table of shape and arithmetic ops, never code from the file), and a ``Shape``
of a tensor whose shape is static is a constant. The batch dimension is taken as 1 in that
arithmetic: hwprune runs one example at a time and the handlers read only the trailing
dimensions of a shape.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from hwprune.errors import ModelError


def label(node, index: int) -> str:
    """How a message names a node: by its name, or by its index and op when it has none."""
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    return f"node #{index} ({node.op_type}, unnamed)"


Handler = Callable[[object, dict, object], object]  # (node, attributes, onnx_values.Context)
#: Handlers of the default ONNX domain's ops, by op type.
OPS: dict[str, Handler] = {}
#: Handlers of the other domains hwprune reads (QONNX's), by domain, then op type.
DOMAIN_OPS: dict[str, dict[str, Handler]] = {}

#: The default domain's names.
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
#: QONNX's quantizers (Quant, BipolarQuant): qonnx's registry reads Brevitas's and FINN's
#: domain names as this one.
QONNX = "qonnx.custom_op.general"
QONNX_ALIASES = frozenset({QONNX, "onnx.brevitas", "finn.custom_op.general"})
#: qonnx's channels-last Conv, MaxPool and BatchNormalization (tensors (N, *spatial, C)).
CHANNELS_LAST = "qonnx.custom_op.channels_last"
#: The domains whose opset import hwprune supplies when a file omits it (exporters of
#: QONNX files often do; the ops are defined by qonnx, not by the import's version).
QONNX_DOMAINS = QONNX_ALIASES | {CHANNELS_LAST}


def domain_of(node) -> str:
    """The node's domain under one name: "" for the default domain, QONNX for its aliases."""
    if node.domain in STANDARD_DOMAINS:
        return ""
    return QONNX if node.domain in QONNX_ALIASES else node.domain


def op(*names: str, domain: str = ""):
    """Register a handler (of the default domain, or of ``domain``): it returns the
    ``onnx_values.Value`` of the node's output, made with ``Context.emit`` (a new IR layer)
    or from an input's value (a node that computes nothing, or that changes the layer
    before it: a bias, a BatchNorm)."""
    table = OPS if domain == "" else DOMAIN_OPS.setdefault(domain, {})

    def register(fn: Handler) -> Handler:
        for name in names:
            table[name] = fn
        return fn

    return register


def handler_of(node, where: str) -> Handler:
    """The handler of the node's op in its domain; UnsupportedLayerError naming the node, the
    domain and what that domain supports."""
    from hwprune.errors import UnsupportedLayerError

    domain = domain_of(node)
    table = OPS if domain == "" else DOMAIN_OPS.get(domain)
    if table is None:
        raise UnsupportedLayerError(f"{where}: domain {node.domain!r} is not one hwprune reads (it reads the default "
                                    f"ONNX domain and QONNX's {', '.join(sorted(QONNX_DOMAINS))})")
    handler = table.get(node.op_type)
    if handler is None:
        of = "" if domain == "" else f" of domain {node.domain!r}"
        raise UnsupportedLayerError(f"{where}: op type {node.op_type!r}{of} is not supported; supported op types"
                                    f"{of} are {', '.join(sorted(table))}")
    return handler


def topological_order(nodes, graph_inputs, path) -> list[int]:
    """Indices of ``nodes`` in an order where every node comes after the producers of its
    inputs (the file's order where it already is one); ModelError naming a node on a cycle,
    or a node reading a value that nothing produces."""
    producer = {}
    for i, node in enumerate(nodes):
        for name in node.output:
            if name:
                producer[name] = i
    available = set(graph_inputs)
    waiting = [0] * len(nodes)
    consumers: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, node in enumerate(nodes):
        for name in set(n for n in node.input if n):
            if name in producer and name not in available:
                waiting[i] += 1
                consumers[producer[name]].append(i)
            elif name not in available:
                raise ModelError(f"{path}: {label(node, i)} reads {name!r}, which no node, initializer or graph "
                                 "input provides")
    ready = deque(i for i in range(len(nodes)) if waiting[i] == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in sorted(consumers[i]):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        stuck = min(i for i in range(len(nodes)) if waiting[i] > 0)
        raise ModelError(f"{path}: the graph has a cycle: {label(nodes[stuck], stuck)} depends on its own output "
                         "(through the nodes that feed it)")
    return order


# -- constant folding ----------------------------------------------------------------------------

Fold = Callable[[list, dict], np.ndarray]
FOLDS: dict[str, Fold] = {}
FOLD_DOMAIN: dict[str, str] = {}  # an op type folded in another domain than the default one


def folds(*names: str, domain: str = ""):
    def register(fn: Fold) -> Fold:
        for name in names:
            FOLDS[name] = fn
            if domain:
                FOLD_DOMAIN[name] = domain
        return fn

    return register


def _axes(values: list, attrs: dict, rank: int, index: int = 1):
    axes = attrs.get("axes")
    if axes is None and len(values) > index and values[index] is not None:
        axes = values[index]
    return None if axes is None else [int(a) % rank for a in np.asarray(axes).reshape(-1)]


@folds("Identity")
def _identity(values, attrs):
    return values[0]


@folds("Cast")
def _cast(values, attrs):
    from onnx import helper

    return values[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))


@folds("Gather")
def _gather(values, attrs):
    return np.take(values[0], values[1].astype(np.int64), axis=int(attrs.get("axis", 0)))


@folds("Concat")
def _concat(values, attrs):
    return np.concatenate([np.atleast_1d(v) if v.ndim == 0 else v for v in values], axis=int(attrs["axis"]))


@folds("Unsqueeze")
def _unsqueeze(values, attrs):
    axes = attrs.get("axes", values[1] if len(values) > 1 else None)
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    rank = values[0].ndim + len(axes)
    return np.expand_dims(values[0], tuple(sorted(a % rank for a in axes)))


@folds("Squeeze")
def _squeeze(values, attrs):
    axes = _axes(values, attrs, values[0].ndim)
    return np.squeeze(values[0], axis=None if axes is None else tuple(axes))


@folds("Reshape")
def _reshape(values, attrs):
    x, shape = values[0], [int(d) for d in values[1].reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@folds("Transpose")
def _transpose(values, attrs):
    return np.transpose(values[0], attrs.get("perm"))


@folds("Slice")
def _slice(values, attrs):
    x = values[0]
    if "starts" in attrs:  # opset < 10: attributes
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = values[1], values[2]
        axes = values[3] if len(values) > 3 and values[3] is not None else None
        steps = values[4] if len(values) > 4 and values[4] is not None else None
    starts, ends = np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1)
    axes = range(len(starts)) if axes is None else np.asarray(axes).reshape(-1)
    steps = [1] * len(starts) if steps is None else np.asarray(steps).reshape(-1)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis) % x.ndim] = slice(int(start), int(max(min(end, 2**62), -(2**62))), int(step))
    return x[tuple(index)]


def _binary(function):
    return lambda values, attrs: np.asarray(function(values[0], values[1])).astype(np.result_type(values[0], values[1]))


def _divide(a, b):
    return np.trunc(np.divide(a, b)) if np.asarray(a).dtype.kind in "iu" else np.divide(a, b)  # ONNX truncates


FOLDS.update(Add=_binary(np.add), Sub=_binary(np.subtract), Mul=_binary(np.multiply), Div=_binary(_divide))


@folds("ConstantOfShape")
def _constant_of_shape(values, attrs):
    from onnx import numpy_helper

    value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, dtype=np.float32)
    return np.full([int(d) for d in values[0].reshape(-1)], value.reshape(-1)[0], dtype=value.dtype)


def constant_of(node, attrs: dict, where: str) -> np.ndarray:
    """The tensor of a ``Constant`` node, whichever attribute holds it."""
    from onnx import numpy_helper

    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise ModelError(f"{where}: only a Constant holding a tensor, floats or ints is supported")


def fold(nodes: list, attrs_of: list, constants: dict, shapes: dict, path) -> list[int]:
    """Evaluate every Constant, every foldable node whose inputs are constants and every
    ``Shape`` of a static shape, in order; their outputs join ``constants``. Returns the
    positions (in ``nodes``) of the nodes that remain."""
    remaining = []
    for position, (index, node) in enumerate(nodes):
        attrs = attrs_of[position]
        where = f"{path}: {label(node, index)}"
        if node.op_type == "Constant":
            constants[node.output[0]] = constant_of(node, attrs, where)
            continue
        if node.op_type == "Shape":
            shape = shapes.get(node.input[0])
            if shape is not None and all(d is not None for d in shape[1:]):
                full = np.array([1, *shape[1:]], dtype=np.int64)  # the batch taken as 1 (module docstring)
                constants[node.output[0]] = full[attrs.get("start", 0):attrs.get("end", len(full))]
                continue
        present = [name for name in node.input if name]
        foldable = node.op_type in FOLDS and FOLD_DOMAIN.get(node.op_type, "") == domain_of(node)
        if foldable and present and all(name in constants for name in present):
            values = [constants[name] if name else None for name in node.input]
            try:
                constants[node.output[0]] = FOLDS[node.op_type](values, attrs)
            except (ValueError, IndexError, TypeError, KeyError) as exc:
                raise ModelError(f"{where}: cannot evaluate it on its constant inputs ({exc})") from None
            continue
        remaining.append(position)
    return remaining
