"""ONNX models (``.onnx``, read with the ``onnx`` package) -> float IR graphs.

An ONNX file is data: nothing in it runs, and onnxruntime is not needed. Each node becomes
IR layers that name the tensors they read, so a graph with branches (a residual Add, a
Concat of two paths, a Mul of a gate) stays a graph. The frontend is a table of op
handlers (``OPS``; ``onnx_ops`` for dense, element-wise, merge and layout ops,
``onnx_spatial`` for convolution and pooling); a new op is one handler.

Old exporters matter: opset-9 files list their initializers among the graph inputs too,
and fix the batch dimension to a number; both are accepted. Before the walk, nodes are put
in topological order and constant subgraphs folded (``onnx_graph``), and nodes that no
graph output depends on are dropped. Layout: ONNX is channels-first, the IR channels-last
(``onnx_values``); a model whose input is only read by a Transpose from channels-last
(keras2onnx, tf2onnx) takes channels-last data, one with convolutions or pooling otherwise
takes channels-first data as its source did. torch's old BatchNorm1d export (``Unsqueeze``
-> BatchNormalization -> ``Squeeze``) is a BatchNorm. QONNX ``Quant``/``BipolarQuant``
nodes make a quantized graph of the types they declare (``onnx_quant``). Handlers are looked
up by domain (``onnx_graph.handler_of``): QONNX's quantizers and its channels-last ops
(``onnx_channels_last``; a model with them takes channels-last data) have tables of their
own, and a file that uses QONNX's domains without importing them gets the import.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwprune.errors import HwpruneError, ModelError, UnsupportedLayerError, WeightError
from hwprune.frontends import onnx_activations, onnx_channels_last, onnx_ops, onnx_quant, onnx_spatial  # noqa: F401  (register the handlers)
from hwprune.frontends.onnx_graph import OPS, QONNX_DOMAINS, STANDARD_DOMAINS, fold, handler_of, label, topological_order  # noqa: F401  (OPS: the default domain's table)
from hwprune.frontends.onnx_limits import read_model
from hwprune.frontends.onnx_ops import moves_single_channel
from hwprune.frontends.onnx_values import Context, Value
from hwprune.frontends.torch_load import _first_line
from hwprune.ir.graph import INPUT, Graph, GraphInput
from hwprune.limits import check_activations
from hwprune.quant.exact import complete_types, declares_types

#: What a handler raises on values of the wrong shape or type: the file's fault, a ModelError.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RuntimeError)

#: Op types that slide a window over a channels-first tensor: with one, a model's input is channels-first.
SPATIAL_OPS = frozenset({"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad"})


def _read(path: Path):
    """The model with its nodes in topological order, checked, with shapes inferred, and the
    file's index of every node (for messages)."""
    import onnx

    try:
        model = read_model(path)  # declared sizes and external data locations checked first
        order = _sort_nodes(model, path)
        _import_qonnx_domains(model, path)
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


def _import_qonnx_domains(model, path) -> None:
    """Give QONNX's domains the opset import that exporters often leave out (the checker
    refuses a node of a domain the file does not import); a node of another domain the
    file does not import is named."""
    from onnx import helper

    imported = {o.domain for o in model.opset_import} | set(STANDARD_DOMAINS)
    for index, node in enumerate(model.graph.node):
        if node.domain in imported:
            continue
        if node.domain not in QONNX_DOMAINS:
            raise ModelError(f"{path}: {label(node, index)} is in domain {node.domain!r}, which the file does not "
                             "import (opset_import) and hwprune does not read")
        model.opset_import.append(helper.make_opsetid(node.domain, 1))
        imported.add(node.domain)


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


def _needed(nodes, positions: list[int], outputs: list[str]) -> list[int]:
    """The positions of the nodes some graph output depends on, in order."""
    producer = {name: p for p in positions for name in nodes[p][1].output if name}
    needed, stack = set(), [producer[o] for o in outputs if o in producer]
    while stack:
        p = stack.pop()
        if p not in needed:
            needed.add(p)
            stack.extend(producer[n] for n in nodes[p][1].input if n in producer)
    return [p for p in positions if p in needed]


def _input_value(node_list, name: str, shape: tuple, attrs_of, constants) -> tuple[Value, tuple, str]:
    """The graph input's value, IR shape and layout: channels-last when a Transpose to
    channels-first (or a Reshape that is one: a single channel moved) is its only reader,
    channels-first when a spatial op is in the model, else as declared."""
    rank = len(shape)
    if rank == 2:
        return Value(INPUT, 2, "flat"), shape[1:], "channels_last"
    to_first = [0, rank - 1, *range(1, rank - 1)]
    readers = [(node, attrs) for node, attrs in zip(node_list, attrs_of) if name in node.input]
    if readers and all((n.op_type == "Transpose" and [int(p) for p in a.get("perm", [])] == to_first)
                       or (n.op_type == "Reshape" and moves_single_channel(constants.get(n.input[1]), shape[1:]))
                       for n, a in readers):
        return Value(INPUT, rank, "cl"), shape[1:], "channels_last"
    if any(node.op_type in SPATIAL_OPS and node.domain in STANDARD_DOMAINS for node in node_list):
        return Value(INPUT, rank, "cf"), (*shape[2:], shape[1]), "channels_first"
    return Value(INPUT, rank, "cl"), shape[1:], "channels_last"


def _check_finite(ctx: Context, node) -> None:
    """NaN or Inf weights: named here, by node and initializer."""
    for name in node.input:
        value = ctx.constants.get(name)
        if value is not None and value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            raise WeightError(f"{ctx.where(node)}: initializer {name!r} has a non-finite value {value[index]} "
                              f"at index {index}")


def _cut_outputs(graph, path, wanted) -> list[str]:
    """The tensors the graph is cut at: the file's own outputs, or the named ``wanted`` ones
    (a training graph whose output is a loss or an accuracy still holds the network's logits)."""
    if not wanted:
        return [o.name for o in graph.output]
    produced = {t for node in graph.node for t in node.output if t}
    for tensor in wanted:
        if tensor not in produced:
            # what a user most likely wants: the tensors an ArgMax or Softmax reads, then the file's outputs
            likely = [n.input[0] for n in graph.node if n.op_type in ("ArgMax", "Softmax") and n.input[:1]
                      and n.input[0] in produced]
            candidates = list(dict.fromkeys(likely + [o.name for o in graph.output]))[:5]
            raise ModelError(f"{path}: --output {tensor!r} is not a tensor the model computes; candidates: "
                             + ", ".join(repr(c) for c in candidates))
    return list(dict.fromkeys(wanted))


def onnx_to_graph(model, path, name: str = "model", order=None, outputs=None) -> Graph:
    """The float IR graph an ONNX model computes, cut at the named ``outputs`` if given
    (only the nodes they need are kept; a graph input no kept node reads is dropped, as
    ``onnx.utils.Extractor`` does)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = _cut_outputs(graph, path, outputs)
    inputs = [i for i in graph.input if i.name not in constants]  # opset 9 lists initializers here too
    nodes = list(zip(order if order is not None else range(len(graph.node)), graph.node))
    if len(inputs) > 1 and outputs != [o.name for o in graph.output]:
        read = {t for p in _needed(nodes, list(range(len(nodes))), outputs) for t in nodes[p][1].input}
        inputs = [i for i in inputs if i.name in read]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs[:4]) + (", ..." if len(inputs) > 4 else "")
        raise ModelError(f"{path}: the model takes {len(inputs)} inputs ({names}); hwprune reads models with one")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    if len(shape) < 2 or any(d is None or d <= 0 for d in shape[1:]):
        raise ModelError(f"{path}: input {inputs[0].name!r} has shape {shape}; expected (batch, features...) "
                         "with every dimension but the batch fixed")
    shapes = _shapes(graph, constants)
    attrs_of = [{a.name: helper.get_attribute_value(a) for a in node.attribute} for _, node in nodes]
    positions = _needed(nodes, fold(nodes, attrs_of, constants, shapes, path), outputs)
    ctx = Context(Path(path), constants, shapes, batch=shape[0] if shape[0] and shape[0] > 0 else None)
    for p in positions:
        for tensor in nodes[p][1].input:
            if tensor and tensor not in constants:
                ctx.readers[tensor] = ctx.readers.get(tensor, 0) + 1
    for tensor in outputs:
        ctx.readers[tensor] = ctx.readers.get(tensor, 0) + 1
    value, ir_shape, layout = _input_value([nodes[p][1] for p in positions], inputs[0].name, shape,
                                           [attrs_of[p] for p in positions], constants)
    ctx.values[inputs[0].name], ctx.ir_shapes[INPUT] = value, tuple(int(d) for d in ir_shape)
    for position in positions:
        (ctx.index, node), attrs = nodes[position], attrs_of[position]
        handler = handler_of(node, ctx.where(node))
        _check_finite(ctx, node)
        for tensor in node.input:
            if tensor and tensor not in constants and tensor not in ctx.values:
                raise ctx.fail(node, f"it reads {tensor!r}, an output hwprune does not compute (only a node's "
                                     "first output is)")
        ctx.values[node.output[0]] = handler(node, attrs, ctx)
    return _graph(ctx, path, name, outputs, layout)


def _graph(ctx: Context, path, name: str, outputs: list[str], layout: str) -> Graph:
    names = []
    for tensor in outputs:
        value = ctx.values.get(tensor)
        if value is None or value.ir == INPUT:
            raise ModelError(f"{path}: the graph output {tensor!r} is not computed by any supported node")
        if value.affine is not None and not value.unsqueezed:  # a final BatchNorm: a layer of its own
            value = ctx.normalize(value, ctx.unique("output_bn"))
        pending = value.affine or value.pad or value.unsqueezed
        if pending or value.perm is not None:
            why = ("a Pad or Unsqueeze has nothing after it to fold into" if pending else
                   "it is a flattened channels-first tensor, which hwprune holds channels-last; end the model in "
                   "a Gemm or MatMul")
            raise UnsupportedLayerError(f"{path}: graph output {tensor!r}: {why}")
        names.append(value.ir)
    if not ctx.layers:
        raise ModelError(f"{path}: the model computes nothing hwprune maps to a layer")
    return Graph(name, (GraphInput(INPUT, ctx.ir_shapes[INPUT]),), tuple(ctx.layers),
                 tuple(dict.fromkeys(names)), input_layout=layout)


def load_onnx(path, name: str = "model", outputs=None):
    """A float IR graph from an ONNX file, cut at the named tensors ``outputs`` if given."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    model, order = _read(path)
    try:
        graph = onnx_to_graph(model, path, name, order, outputs)
    except HwpruneError:
        raise
    except MALFORMED as exc:  # values of the wrong shape or type where a handler reads them: the file's fault
        raise ModelError(f"{path}: malformed ONNX model ({type(exc).__name__}: {_first_line(exc)[:200]})") from None
    check_activations(graph, str(path))
    if declares_types(graph):  # QONNX Quant nodes: the model's own types, nothing calibrated
        try:
            graph = complete_types(graph, exact_weights=True)
        except HwpruneError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    return graph
