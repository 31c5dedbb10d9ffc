"""torch.nn modules -> float IR graphs.

Supported: ``nn.Sequential`` (nested too), read leaf by leaf, and any module whose
``forward`` ``torch.fx`` can trace (``torch_fx``): chains, and graphs with residual adds
(``+``), products of tensors (``*``) and ``torch.cat``. Of Linear, Conv1d, Conv2d (groups 1
or depthwise), MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d(1), ZeroPad/ConstantPad(0)
before a conv, ReLU, ReLU6 and Hardtanh/clamp (Clip), Sigmoid, Tanh, LeakyReLU, PReLU, Hardsigmoid,
SiLU (``torch_activations``), Flatten (and a ``view(batch, -1)``),
Identity, Dropout (dropped at inference), BatchNorm1d/2d and a final Softmax (kept as a
marker). ``torch_graph.translate`` maps them to the IR: BatchNorm is folded into the Linear
or conv right before it, or else into the next one when only Identity or Dropout come
between (before a conv only if the conv has no padding). Anything else is an error that
names the module or the fx node and its call.

A model with conv or pooling layers takes channels-first inputs, ``(C, L)`` or
``(C, H, W)``; its graph is channels-last with ``input_layout="channels_first"``, and a
Linear after a Flatten of a spatial tensor gets its columns permuted to the IR's order
(``torch_spatial``), so the graph computes what the module computes.

Loading (``torch_load``) stays safe: a pickled ``nn.Sequential`` of the layers above reads
as data; a model of the user's own class (any graph model) needs ``--trust-model`` and its
class importable, or can be saved as a ``.pt2`` program (``torch.export``), read as data.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.frontends import torch_activations, torch_fx, torch_spatial
from hwprune.frontends.torch_twin import GraphTwin
from hwprune.frontends.torch_graph import INPUT, Op, layer_name as _layer_name, translate  # noqa: F401
from hwprune.frontends.torch_load import (  # noqa: F401  (the loading API lives there; re-exported)
    SAFE_MODULES, TRUST_HINT, UnsafeLoadWarning, _first_line, load_torch_model, safe_classes)
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Clip, Dense, Flatten, ReLU, Softmax



def _torch():
    import torch  # deferred: importing torch costs about a second

    return torch


def sequential_leaves(module, allowed: tuple = (), hint: str = "", prefix: str = "") -> list[tuple[str, object]]:
    """The leaf modules of a (nested) ``nn.Sequential`` with their dotted paths, in order.

    Any other container, or a leaf that is not an instance of ``allowed`` (when given),
    is an UnsupportedLayerError naming the module, its type and ``hint``.
    """
    nn = _torch().nn
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out.extend(sequential_leaves(child, allowed, hint, f"{prefix}{name}."))
        return out
    name = prefix.rstrip(".") or type(module).__name__.lower()
    # Masks live in a ``parametrizations`` child; the module is still a leaf layer.
    inner = [n for n, _ in module.named_children() if n != "parametrizations"]
    if inner or (allowed and not isinstance(module, allowed)):
        raise UnsupportedLayerError(f"module {name!r} ({type(module).__name__}): {hint}")
    return [(name, module)]


def _chain(module, prefix: str = "") -> list[tuple[str, object]]:
    """The leaf modules of ``module`` in call order, or an error if it is not a chain."""
    torch = _torch()
    nn = torch.nn
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out.extend(_chain(child, f"{prefix}{name}."))
        return out
    if not list(module.children()):
        return sequential_leaves(module, prefix=prefix)
    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:
        raise UnsupportedLayerError(
            f"module {prefix.rstrip('.') or type(module).__name__!r} ({type(module).__name__}): its forward "
            f"could not be traced as a chain of layers ({type(exc).__name__}: {exc})"
        ) from None
    out = []
    previous = None
    modules = dict(traced.named_modules())
    for node in traced.graph.nodes:
        if node.op == "placeholder":
            previous = node
            continue
        if node.op == "output":
            break
        sources = [a for a in node.all_input_nodes]
        if sources != [previous]:
            raise UnsupportedLayerError(
                f"module {type(module).__name__}: its forward is not a chain (node {node.name!r} takes {sources})"
            )
        where = f"{prefix}{node.target}" if node.op == "call_module" else f"{prefix}{node.name}"
        if node.op == "call_module":
            out.extend(_chain(modules[node.target], f"{prefix}{node.target}."))
        elif node.op == "call_function" and node.target in (torch.relu, torch.nn.functional.relu):
            out.append((where, nn.ReLU()))
        elif node.op == "call_function" and node.target is torch.flatten:
            out.append((where, nn.Flatten()))
        elif node.op == "call_method" and node.target == "relu":
            out.append((where, nn.ReLU()))
        elif torch_activations.function_module(node) is not None:  # torch.sigmoid, torch.tanh
            out.append((where, torch_activations.function_module(node)))
        else:
            raise UnsupportedLayerError(
                f"module {type(module).__name__}: operation {node.op} {node.target!r} at {where!r} is not supported"
            )
        previous = node
    return out


def save_torch_model(module, path: Path) -> None:
    """Save ``module`` so that ``load_torch_model`` reads it back without trust: its chain of
    leaf layers as a plain ``nn.Sequential`` (a module of another class, e.g. one defined in
    the user's script, would need that class to load)."""
    torch = _torch()
    nn = torch.nn
    if type(module) is not nn.Sequential or any(type(m) not in safe_classes() for m in module.modules()):
        leaves = _chain(module)
        used: set[str] = set()
        module = nn.Sequential(OrderedDict((_layer_name(name, "layer", used), leaf) for name, leaf in leaves))
    torch.save(module, path)


def from_torch(module, input_shape: tuple[int, ...] | None = None, name: str = "model",
               fallback_input_shape: tuple[int, ...] | None = None) -> Graph:
    """A float IR graph equivalent to ``module`` in eval mode.

    Without ``input_shape`` it is read off a first Linear layer, else taken from
    ``fallback_input_shape`` (e.g. the shape of the data at hand).
    """
    nn = _torch().nn
    if not isinstance(module, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(module, nn.Sequential) or not list(module.children()):
        ops, outputs = _chain_ops(_chain(module))
    else:
        ops, outputs = torch_fx.module_ops(module)
    return translate(ops, outputs, name, input_shape, fallback_input_shape)


def _chain_ops(leaves: list[tuple[str, object]]) -> tuple[list[Op], tuple[str, ...]]:
    """A chain of leaf modules as ops, each reading the one before it."""
    ops, previous = [], INPUT
    for path, child in leaves:
        ops.append(Op(f"op:{path}", path, child, (previous,)))
        previous = ops[-1].name
    return ops, (previous,)


def _sequence(graph: Graph, swish: dict[str, str]) -> bool:
    """Whether ``graph`` is a chain once each SiLU's Sigmoid and Multiply count as one layer."""
    if len(graph.inputs) != 1:
        return False
    previous = graph.inputs[0].name
    for layer in graph.layers:
        if layer.name in swish:
            continue
        if (layer.inputs[0] != previous) if layer.name in swish.values() else (layer.inputs != (previous,)):
            return False
        previous = layer.name
    return graph.outputs == (previous,)


def to_torch(graph: Graph):
    """A float64 ``nn.Sequential`` computing ``graph`` (its float weights), for fine-tuning.

    Module names are the IR layer names and the weights are float64, so
    ``from_torch(to_torch(g))`` gives back ``g`` exactly. A graph that is not a chain
    (branches, adds, concatenations) has no ``nn.Sequential``: it gets its ``GraphTwin``
    (``torch_twin``), whose ``to_graph`` gives the graph back.
    """
    torch = _torch()
    nn = torch.nn
    swish = torch_activations.swish_sigmoids(graph)
    if not _sequence(graph, swish):
        return GraphTwin(graph, torch.float64)
    spatial = any(layer.spatial for layer in graph.layers)
    if spatial and graph.input_layout != "channels_first":
        raise UnsupportedLayerError(f"model {graph.name!r}: to_torch builds channels-first modules; this conv "
                                    "graph takes channels-last inputs")
    modules = {}
    flat_in: tuple = ()  # the spatial shape a Flatten flattened, until the Dense that reads it
    for index, layer in enumerate(graph.layers):
        if isinstance(layer, Flatten) and len(graph.input_shape_of_layer(layer)) >= 2:
            flat_in = graph.input_shape_of_layer(layer)
        if isinstance(layer, Dense):
            weight = layer.weight
            if len(flat_in) >= 2:  # undo the frontend's column order
                weight = np.empty_like(weight)
                weight[:, torch_spatial.flatten_permutation(flat_in)] = layer.weight
                flat_in = ()
            linear = nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(weight))
                linear.bias.copy_(torch.tensor(layer.bias))
            modules[layer.name] = linear
        elif layer.spatial:
            modules.update(torch_spatial.to_torch_modules(layer, torch.float64, graph.input_shape_of_layer(layer)[-1]))
            following = graph.layers[index + 1] if index + 1 < len(graph.layers) else None
            if layer.kind.startswith("globalavgpool") and not isinstance(following, Flatten):
                modules[f"{layer.name}_flatten"] = nn.Flatten()
        elif isinstance(layer, ReLU):
            modules[layer.name] = nn.ReLU()
        elif isinstance(layer, Clip):
            modules[layer.name] = nn.Hardtanh(layer.min_value, layer.max_value)
        elif isinstance(layer, Flatten):
            modules[layer.name] = nn.Flatten()
        elif isinstance(layer, Softmax):
            modules[layer.name] = nn.Softmax(dim=-1)
        elif layer.name in swish:  # the Sigmoid of a SiLU: nn.SiLU stands at its Multiply
            continue
        elif torch_activations.to_torch_module(layer, swish) is not None:
            modules[layer.name] = torch_activations.to_torch_module(layer, swish)
        else:
            raise UnsupportedLayerError(f"layer {layer.name!r}: no torch module for {layer.kind!r}")

    return nn.Sequential(OrderedDict(modules))
