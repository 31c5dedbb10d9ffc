"""torch.export programs (``.pt2``, ``torch.export.save``) -> float IR graphs.

``torch.export.load`` reads a program as data (a graph of ATen operators and tensors): no
code from the file runs. Each operator is turned back into the torch.nn layer it came from
(or a ``Merge`` for ``aten.add``, ``aten.mul`` and ``aten.cat``) by a handler in
``HANDLERS``, reading the tensors its node reads, and ``torch_graph.translate`` maps that
graph to the IR, as it does a module traced with torch.fx: a chain reads exactly as the same
``nn.Sequential`` pickled (the same layers, names, BatchNorm folding and errors), and
residual adds and concatenations stay a graph.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import warnings
from pathlib import Path
from typing import Callable

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.frontends.pt2_scan import check_pt2
from hwprune.frontends.torch import _first_line, _torch
from hwprune.frontends.torch_graph import INPUT, Merge, Op, translate

# op name -> handler(node, tensor(arg), rank of the input) returning a module, or None to skip it
Handler = Callable[..., object]
HANDLERS: dict[str, Handler] = {}
SKIPPED = ("aten.dropout.default", "aten.clone.default", "aten.alias.default", "aten.detach.default",
           "aten.contiguous.default", "aten.feature_dropout.default")


def handles(*names: str):
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn

    return register


def _with_params(module, **tensors):
    """``module`` with its parameters and buffers set to the program's tensors."""
    with _torch().no_grad():
        for key, value in tensors.items():
            getattr(module, key).copy_(value)
    return module


@handles("aten.linear.default")
def _linear(node, tensor, rank):
    weight = tensor(node.args[1])
    bias = tensor(node.args[2]) if len(node.args) > 2 and node.args[2] is not None else None
    nn = _torch().nn
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    return _with_params(linear, weight=weight, **({"bias": bias} if bias is not None else {}))


@handles("aten.relu.default", "aten.relu_.default")
def _relu(node, tensor, rank):
    return _torch().nn.ReLU()


@handles("aten.hardtanh.default", "aten.hardtanh_.default", "aten.clamp.default", "aten.relu6.default",
         "aten.relu6_.default")
def _clamp(node, tensor, rank):
    nn = _torch().nn
    if "relu6" in str(node.target):
        return nn.ReLU6()
    lo = node.args[1] if len(node.args) > 1 else node.kwargs.get("min", -1.0)
    hi = node.args[2] if len(node.args) > 2 else node.kwargs.get("max", 1.0 if "hardtanh" in str(node.target) else None)
    if lo is not None and hi is None and float(lo) == 0.0:
        return nn.ReLU()
    if lo is None or hi is None:
        raise UnsupportedLayerError(f"node {node.name!r} ({node.target}): a clamp needs both bounds (or min=0 alone)")
    return nn.Hardtanh(float(lo), float(hi))


@handles("aten.pad.default", "aten.constant_pad_nd.default")
def _pad(node, tensor, rank):
    nn = _torch().nn
    pad = [int(p) for p in node.args[1]]
    constant = "constant_pad_nd" in str(node.target)
    mode = "constant" if constant else (node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant"))
    value = node.args[2 if constant else 3] if len(node.args) > (2 if constant else 3) else node.kwargs.get("value")
    if mode != "constant" or len(pad) not in (2, 4):
        raise UnsupportedLayerError(f"node {node.name!r} ({node.target}): only constant padding of the last one or "
                                    f"two axes is supported, got mode={mode!r}, pad={pad}")
    return (nn.ConstantPad1d if len(pad) == 2 else nn.ConstantPad2d)(tuple(pad), float(value or 0.0))


@handles("aten.sigmoid.default", "aten.tanh.default", "aten.hardsigmoid.default", "aten.silu.default",
         "aten.leaky_relu.default", "aten.prelu.default")
def _activation(node, tensor, rank):
    nn = _torch().nn
    kind = str(node.target).split(".")[1]
    if kind == "leaky_relu":
        return nn.LeakyReLU(float(node.args[1]) if len(node.args) > 1 else 0.01)
    if kind == "prelu":
        weight = tensor(node.args[1])
        return _with_params(nn.PReLU(weight.numel(), dtype=weight.dtype), weight=weight.reshape(-1))
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "hardsigmoid": nn.Hardsigmoid, "silu": nn.SiLU}[kind]()


@handles("aten.add.Tensor", "aten.add_.Tensor")
def _add(node, tensor, rank):
    if node.kwargs.get("alpha", 1) != 1:
        raise UnsupportedLayerError(f"node {node.name!r} ({node.target}): alpha={node.kwargs['alpha']} is not "
                                    "supported")
    return Merge("add")


@handles("aten.mul.Tensor", "aten.mul_.Tensor")
def _mul(node, tensor, rank):
    return Merge("multiply")


@handles("aten.cat.default", "aten.concat.default")
def _cat(node, tensor, rank):
    return Merge("concatenate", int(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)))


@handles("aten.flatten.using_ints")
def _flatten(node, tensor, rank):
    start = node.args[1] if len(node.args) > 1 else 0
    end = node.args[2] if len(node.args) > 2 else -1
    return _torch().nn.Flatten(start, end)


@handles("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def _reshape(node, tensor, rank):
    shape = node.meta["val"].shape
    if len(shape) != 2:
        raise UnsupportedLayerError(f"node {node.name!r} ({node.target}): only a reshape to (batch, features) "
                                    f"is supported, got shape {tuple(shape)}")
    return _torch().nn.Flatten() if rank > 2 else None


@handles("aten.softmax.int", "aten._softmax.default", "aten.log_softmax.int", "aten._log_softmax.default")
def _softmax(node, tensor, rank):
    nn = _torch().nn
    return (nn.LogSoftmax if "log_softmax" in str(node.target) else nn.Softmax)(dim=node.args[1])


@handles("aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default")
def _batch_norm(node, tensor, rank):
    nn = _torch().nn
    weight, bias, mean, var = (tensor(a) if a is not None else None for a in node.args[1:5])
    eps = node.args[-2] if str(node.target) == "aten.batch_norm.default" else node.args[-1]
    cls = nn.BatchNorm1d if rank in (2, 3) else nn.BatchNorm2d
    bn = cls(mean.shape[0], eps=float(eps), affine=weight is not None, dtype=mean.dtype)
    params = {"running_mean": mean, "running_var": var}
    if weight is not None:
        params.update(weight=weight, bias=bias)
    return _with_params(bn.eval(), **params)


@handles("aten.conv1d.default", "aten.conv2d.default")
def _conv(node, tensor, rank):
    nn = _torch().nn
    weight = tensor(node.args[1])
    bias = tensor(node.args[2]) if len(node.args) > 2 and node.args[2] is not None else None
    stride, padding, dilation, groups = (list(node.args[3:7]) + [1, 0, 1, 1][len(node.args[3:7]):])
    cls = nn.Conv1d if weight.dim() == 3 else nn.Conv2d
    conv = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride=stride, padding=padding,
               dilation=dilation, groups=groups, bias=bias is not None, dtype=weight.dtype)
    return _with_params(conv, weight=weight, **({"bias": bias} if bias is not None else {}))


@handles("aten.max_pool1d.default", "aten.max_pool2d.default", "aten.avg_pool1d.default", "aten.avg_pool2d.default")
def _pool(node, tensor, rank):
    nn = _torch().nn
    two_d = "2d" in str(node.target)
    if "max" in str(node.target):
        cls = nn.MaxPool2d if two_d else nn.MaxPool1d
        return cls(*node.args[1:])
    cls = nn.AvgPool2d if two_d else nn.AvgPool1d
    return cls(*node.args[1:])


@handles("aten.adaptive_avg_pool1d.default", "aten.adaptive_avg_pool2d.default")
def _adaptive_pool(node, tensor, rank):
    nn = _torch().nn
    cls = nn.AdaptiveAvgPool2d if "2d" in str(node.target) else nn.AdaptiveAvgPool1d
    return cls(node.args[1])


def load_exported_program(path, name: str = "model", trust_model: bool = False):
    """A float IR graph from a ``torch.export.save`` file.

    Unless ``trust_model``, every pickle in the archive is checked first (``pt2_scan``):
    torch unpickles some parts with ``weights_only=False``, and they could run code.
    """
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if not trust_model:
        check_pt2(path)
    try:
        with _quiet_torch():
            program = torch.export.load(path)
    except Exception as exc:  # torch.export raises many kinds for a damaged archive
        raise ModelError(f"{path}: not a readable torch.export program ({type(exc).__name__}: {_first_line(exc)})") from None
    ops, outputs = program_ops(program, path)
    return translate(ops, outputs, name, fallback_input_shape=_input_shape(program, path))


@contextlib.contextmanager
def _quiet_torch():
    """torch.export logs a traceback (and warns) on a damaged archive before raising: the one
    line hwprune prints is the error, so torch's loggers are silenced around the load."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export", "torch.export.pt2_archive")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _input_shape(program, path) -> tuple[int, ...]:
    signature = program.graph_signature
    users = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in signature.user_inputs]
    if len(users) != 1:
        raise ModelError(f"{path}: the program takes {len(users)} inputs; hwprune reads models with one")
    return tuple(int(d) for d in users[0].meta["val"].shape[1:])


def program_ops(program, path="program") -> tuple[list[Op], tuple[str, ...]]:
    """The ops (torch.nn layers and merges, with the tensors each reads) that ``program``
    (an ExportedProgram) computes, and the names of the tensors it returns. A layer's path is
    its position among the layers, as in the ``nn.Sequential`` a chain of them would be."""
    signature = program.graph_signature
    state = {**program.state_dict, **program.constants}
    named = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
             **getattr(signature, "inputs_to_lifted_tensor_constants", {})}

    def tensor(node):
        if getattr(node, "op", None) != "placeholder" or node.name not in named:
            raise UnsupportedLayerError(f"{path}: {node} is computed, not a stored parameter; not supported")
        return state[named[node.name]].detach().clone()

    ops: list[Op] = []
    names: dict = {}  # node name -> op name (INPUT for the user input)
    outputs: tuple[str, ...] = ()
    layers = 0  # the position of the next layer
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in signature.user_inputs:
                names[node.name] = INPUT
            continue
        if node.op == "output":
            results = list(node.args[0])[len(node.args[0]) - len(signature.user_outputs):]
            missing = [getattr(r, "name", r) for r in results if getattr(r, "name", None) not in names]
            if missing:
                raise UnsupportedLayerError(f"{path}: the program returns {missing}, not tensors computed by layers")
            outputs = tuple(names[r.name] for r in results)
            break
        target = str(node.target)
        data = [a for a in node.all_input_nodes if a.op != "placeholder" or a.name not in named]
        if node.op == "call_function" and node.target is operator.getitem and node.args[1] == 0 \
                and len(data) == 1 and data[0].name in names:
            names[node.name] = names[data[0].name]  # the value of a tuple-returning op (native batch norm)
            continue
        if any(a.name not in names for a in data):
            raise UnsupportedLayerError(f"{path}: node {node.name!r} ({target}) reads "
                                        f"{[a.name for a in data if a.name not in names]}, not tensors computed "
                                        "by supported layers")
        if node.op != "call_function" or (target not in HANDLERS and target not in SKIPPED):
            raise UnsupportedLayerError(
                f"{path}: node {node.name!r} ({target}) is not supported; supported operators are "
                f"{', '.join(sorted(HANDLERS))} (and {', '.join(SKIPPED)}, skipped at inference)")
        rank = len(data[0].meta["val"].shape) if data and "val" in data[0].meta else 2
        module = None if target in SKIPPED else HANDLERS[target](node, tensor, rank)
        if module is not None and not isinstance(module, Merge) and len(data) != 1:
            raise UnsupportedLayerError(f"{path}: node {node.name!r} ({target}) reads {len(data)} tensors; the "
                                        "layer it maps to reads one")
        if isinstance(module, Merge):
            ops.append(Op(node.name, str(layers), module, _operands(node, module, names, path)))
        elif module is not None:
            ops.append(Op(node.name, str(layers), module, (names[data[0].name],)))
        else:  # skipped at inference: stands for its input
            ops.append(Op(node.name, node.name, _torch().nn.Identity(), (names[data[0].name],)))
        layers += module is not None
        names[node.name] = node.name
    return ops, outputs


def _operands(node, merge: Merge, names: dict, path) -> tuple[str, ...]:
    """The tensors a merge reads, in operand order; a constant or scalar operand is refused."""
    tensors = list(node.args[0]) if merge.kind == "concatenate" else list(node.args[:2])
    if len(tensors) < 2 or any(getattr(t, "name", None) not in names for t in tensors):
        raise UnsupportedLayerError(f"{path}: node {node.name!r} ({node.target}): {merge.kind} is supported only of "
                                    "tensors computed by the model (not with a constant or a scalar)")
    return tuple(names[t.name] for t in tensors)
