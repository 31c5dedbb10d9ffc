"""A torch.nn module's ``forward`` as a dataflow graph of ops (``torch_graph.Op``), with ``torch.fx``.

``torch.fx.symbolic_trace`` records the forward as a graph of calls: of the module's torch.nn
leaf layers, of functions (``torch.relu``, ``torch.cat``, ``operator.add`` for ``+``...) and
of tensor methods (``x.view(...)``). Each call becomes an ``Op`` reading the tensors it names,
so residual adds, concatenations and branches reach ``torch_graph.translate`` as they are.
Functions and methods map to the torch.nn layer computing the same (``F.relu6`` to
``nn.ReLU6``), a flattening ``view``/``reshape`` to ``nn.Flatten``; the shape arithmetic
feeding a view (``x.size(0)``) is no op. Anything else is an UnsupportedLayerError naming the
node and its call.
"""

from __future__ import annotations

import operator
import os
import traceback

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.frontends import torch_activations
from hwprune.frontends.torch_graph import INPUT, SUPPORTED, Merge, Op


def _torch():
    import torch  # deferred: importing torch costs about a second

    return torch


def _arg(node, index: int, key: str, default):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(key, default)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _targets():
    """Function or method name -> what it computes: a module factory ``(node) -> module`` or a Merge kind."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    def clamp(node):
        lo, hi = _arg(node, 1, "min", None), _arg(node, 2, "max", None)
        if lo is not None and hi is None and float(lo) == 0.0:
            return nn.ReLU()
        if lo is None or hi is None:
            raise UnsupportedLayerError(f"node {node.name!r} ({node.op} {_name(node)}): a clamp needs both bounds "
                                        "(or min=0 alone, a ReLU)")
        return nn.Hardtanh(float(lo), float(hi))

    def flatten(node):
        return nn.Flatten(_arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))

    def softmax(cls):
        return lambda node: cls(dim=_arg(node, 1, "dim", None))

    def pool(cls, keys):
        """``F.max_pool2d(x, 2)`` and the like: the module with the same arguments."""
        return lambda node: cls(*node.args[1:], **{k: v for k, v in node.kwargs.items() if k in keys})

    max_keys = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    avg_keys = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")

    return {
        torch.relu: lambda node: nn.ReLU(), F.relu: lambda node: nn.ReLU(), "relu": lambda node: nn.ReLU(),
        F.relu6: lambda node: nn.ReLU6(),
        F.hardtanh: lambda node: nn.Hardtanh(float(_arg(node, 1, "min_val", -1.0)),
                                             float(_arg(node, 2, "max_val", 1.0))),
        torch.clamp: clamp, torch.clip: clamp, "clamp": clamp, "clip": clamp,
        torch.flatten: flatten, "flatten": flatten,
        "view": _view, "reshape": _view, torch.reshape: _view,
        F.dropout: lambda node: nn.Identity(), torch.dropout: lambda node: nn.Identity(),
        "contiguous": lambda node: nn.Identity(),
        F.softmax: softmax(nn.Softmax), torch.softmax: softmax(nn.Softmax), "softmax": softmax(nn.Softmax),
        F.log_softmax: softmax(nn.LogSoftmax), torch.log_softmax: softmax(nn.LogSoftmax),
        "log_softmax": softmax(nn.LogSoftmax),
        F.max_pool1d: pool(nn.MaxPool1d, max_keys), F.max_pool2d: pool(nn.MaxPool2d, max_keys),
        F.avg_pool1d: pool(nn.AvgPool1d, avg_keys[:-1]), F.avg_pool2d: pool(nn.AvgPool2d, avg_keys),
        F.adaptive_avg_pool1d: lambda node: nn.AdaptiveAvgPool1d(_arg(node, 1, "output_size", None)),
        F.adaptive_avg_pool2d: lambda node: nn.AdaptiveAvgPool2d(_arg(node, 1, "output_size", None)),
        operator.add: "add", operator.iadd: "add", torch.add: "add", "add": "add", "add_": "add",
        operator.mul: "multiply", operator.imul: "multiply", torch.mul: "multiply", "mul": "multiply",
        torch.cat: "concatenate", torch.concat: "concatenate", torch.concatenate: "concatenate",
    }


def _view(node):
    """``x.view(batch, -1)`` (or ``reshape``): the Flatten of each example; ``x.view(-1, n)``
    too, when ``n`` is what one example holds (``torch_graph`` checks it)."""
    dims = node.args[1:]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    batch_expression = len(dims) == 2 and hasattr(dims[0], "op")
    if len(dims) == 2 and (batch_expression or dims[1] == -1):
        return _torch().nn.Flatten()
    if len(dims) == 2 and dims[0] == -1 and isinstance(dims[1], int):
        flatten = _torch().nn.Flatten()
        flatten.features = dims[1]  # an attribute of this fresh module, read by torch_graph
        return flatten
    raise UnsupportedLayerError(f"node {node.name!r} ({node.op} {_name(node)}): only a reshape to (batch, -1) is "
                                f"supported, got {tuple(getattr(d, 'name', d) for d in dims)}")


def _name(node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


def _is_shape_arithmetic(node, shape_nodes: set) -> bool:
    """``x.size(...)``, ``x.shape`` and indexing into them: numbers for a view, not tensors."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "ndim"):
        return True
    return node.op == "call_function" and node.target is operator.getitem and node.args[0] in shape_nodes


def _user_line(exc: BaseException) -> str:
    """Where in the model's own code tracing stopped (the last frame outside torch), as
    `` at FILE:LINE (`source`)``; empty when no such frame is known."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}torch{os.sep}" not in f.filename
              and f"{os.sep}hwprune{os.sep}" not in f.filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {os.path.basename(frame.filename)}:{frame.lineno} (`{(frame.line or '').strip()}`)"


def module_ops(module) -> tuple[list[Op], tuple[str, ...]]:
    """The ops of ``module``'s forward in call order and the names of the tensors it returns."""
    torch = _torch()
    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:  # fx raises many kinds for data-dependent control flow
        raise UnsupportedLayerError(f"module {type(module).__name__!r}: its forward could not be traced with "
                                    f"torch.fx{_user_line(exc)} ({type(exc).__name__}: {_first_line(exc)})") from None
    targets = _targets()
    ops: list[Op] = []
    names: dict = {}  # fx node -> op name
    shape_nodes: set = set()
    outputs: tuple[str, ...] = ()
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            if names:
                raise ModelError(f"module {type(module).__name__}: its forward takes more than one input "
                                 f"({node.name!r}); hwprune reads models with one")
            names[node] = INPUT
            continue
        if node.op == "output":
            results = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
            if not all(r in names for r in results):
                raise UnsupportedLayerError(f"module {type(module).__name__}: it returns {results}; hwprune reads "
                                            "models returning tensors computed by supported layers")
            outputs = tuple(names[r] for r in results)
            break
        if _is_shape_arithmetic(node, shape_nodes):
            shape_nodes.add(node)
            continue
        where = f"node {node.name!r} ({node.op} {_name(node)})"
        sources = [a for a in node.all_input_nodes if a not in shape_nodes]
        if any(s not in names for s in sources):
            raise UnsupportedLayerError(f"{where}: reads {[s.name for s in sources if s not in names]}, which are not "
                                        "tensors computed by supported layers")
        inputs = tuple(names[s] for s in sources)
        what = _what(node, traced, targets, where)
        if isinstance(what, str):
            tensors = list(node.args[0] if what == "concatenate" else node.args[:2])
            if len(tensors) < 2 or not all(t in names for t in tensors) \
                    or (what != "concatenate" and len(node.args) != 2) \
                    or (what == "add" and node.kwargs.get("alpha", 1) != 1):
                raise UnsupportedLayerError(f"{where}: {what} is supported only of tensors computed by the model "
                                            "(not with a constant, a scalar or alpha)")
            inputs = tuple(names[t] for t in tensors)  # operand order, a tensor added to itself twice
            dim = _arg(node, 1, "dim", 0) if what == "concatenate" else 1
            module_or_merge = Merge(what, int(dim))
        else:
            if len(inputs) != 1:
                raise UnsupportedLayerError(f"{where}: reads {len(inputs)} tensors; the layer it maps to reads one")
            module_or_merge = what
        path = node.target if node.op == "call_module" else node.name
        ops.append(Op(node.name, path, module_or_merge, inputs))
        names[node] = node.name
    return ops, outputs


def _what(node, traced, targets, where: str):
    """The torch.nn module (or Merge kind) that computes ``node``."""
    if node.op == "call_module":
        return traced.get_submodule(node.target)
    activation = torch_activations.function_module(node)  # torch.sigmoid, torch.tanh and their spellings
    if activation is not None:
        return activation
    target = node.target
    known = node.op in ("call_function", "call_method") and isinstance(target, str) == (node.op == "call_method")
    try:
        entry = targets.get(target) if known else None
    except TypeError:  # an unhashable target
        entry = None
    if entry is None:
        raise UnsupportedLayerError(f"{where} is not supported; hwprune reads {SUPPORTED}")
    return entry if isinstance(entry, str) else entry(node)
