"""torch.nn modules -> float IR graphs.

Supported: ``nn.Sequential`` (nested too) and modules whose ``forward`` is a chain,
found with ``torch.fx``; of Linear, Conv1d, Conv2d, MaxPool1d/2d, AvgPool1d/2d,
AdaptiveAvgPool1d/2d(1), ZeroPad/ConstantPad(0) before a conv, ReLU, Flatten, Identity,
Sigmoid, Tanh, LeakyReLU, PReLU, Hardsigmoid, SiLU (``torch_activations``; torch.sigmoid/tanh too),
Dropout (dropped at inference), BatchNorm1d/2d and a final Softmax (kept as a marker).
BatchNorm is folded into the Linear or conv right before it, or else into the next one
when only Identity or Dropout come between (before a conv only if the conv has no
padding). Anything else is an error that names the module and its type.

A model with conv or pooling layers takes channels-first inputs, ``(C, L)`` or
``(C, H, W)``; its graph is channels-last with ``input_layout="channels_first"``, and a
Linear after a Flatten of a spatial tensor gets its columns permuted to the IR's order
(``torch_spatial``), so the graph computes what the module computes.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import ModelError, ShapeError, UnsupportedLayerError, WeightError
from hwprune.frontends import torch_activations, torch_spatial
from hwprune.frontends.torch_load import (  # noqa: F401  (the loading API lives there; re-exported)
    SAFE_MODULES, TRUST_HINT, UnsafeLoadWarning, _first_line, load_torch_model, safe_classes, save_torch_model)
from hwprune.ir.graph import INPUT, Graph, is_c_identifier
from hwprune.ir.layers import Dense, Flatten, Layer, ReLU, Softmax, WeightedLayer



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


def _layer_name(path: str, kind: str, used: set[str]) -> str:
    base = path.replace(".", "_")
    if not is_c_identifier(base):
        base = f"{kind}_{base}"
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def _finite(path: str, kind: str, label: str, values: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise WeightError(f"module {path!r} ({kind}): {label} has a non-finite value {values[idx]} at index {idx}")
    return values


def _linear_arrays(path: str, linear) -> tuple[np.ndarray, np.ndarray]:
    weight = linear.weight.detach().cpu().double().numpy()
    bias = linear.bias.detach().cpu().double().numpy() if linear.bias is not None else np.zeros(weight.shape[0])
    return _finite(path, "Linear", "weight", weight), _finite(path, "Linear", "bias", bias)


def _batchnorm_affine(path: str, bn) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm1d/2d in eval mode as ``scale * x + shift`` per feature or channel."""
    kind = type(bn).__name__
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(f"module {path!r} ({kind}): it keeps no running statistics "
                                    "(track_running_stats=False), so it has no fixed inference form to fold")
    mean = _finite(path, kind, "running_mean", bn.running_mean.detach().cpu().double().numpy())
    var = _finite(path, kind, "running_var", bn.running_var.detach().cpu().double().numpy())
    gamma = bn.weight.detach().cpu().double().numpy() if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.detach().cpu().double().numpy() if bn.bias is not None else np.zeros_like(mean)
    scale = _finite(path, kind, "weight", gamma) / np.sqrt(var + bn.eps)
    return scale, _finite(path, kind, "bias", beta) - mean * scale


def _fold_after(layer: WeightedLayer, path: str, scale: np.ndarray, shift: np.ndarray) -> WeightedLayer:
    """BatchNorm(layer(x)) = layer with (diag(scale) W, scale * b + shift)."""
    if scale.shape != (layer.out_channels,):
        raise ShapeError(f"module {path!r}: BatchNorm over {scale.size} features follows {layer.name!r} with "
                         f"{layer.out_channels} outputs")
    axes = (-1,) + (1,) * (layer.weight.ndim - 1)
    return layer.with_(weight=layer.weight * scale.reshape(axes), bias=layer.bias * scale + shift)


def _fold_before_conv(pending, conv: WeightedLayer) -> WeightedLayer:
    """conv(scale * x + shift): exact when no zero padding meets the shifted values."""
    path, scale, shift, kind = pending
    if any(p != (0, 0) for p in conv.padding) and np.any(shift != 0):
        raise UnsupportedLayerError(f"module {path!r} ({kind}) cannot be folded into the padded conv "
                                    f"{conv.name!r} after it (its zero padding would not be shifted); fold it "
                                    "into the layer before it")
    channels = np.arange(conv.out_channels) // (conv.out_channels // scale.size) if conv.depthwise else None
    per_filter_scale = scale[channels][:, None] if conv.depthwise else scale[None, :]
    per_filter_shift = shift[channels][:, None] if conv.depthwise else shift[None, :]
    weight = conv.weight * per_filter_scale.reshape(per_filter_scale.shape[0], *([1] * (conv.rank)), -1)
    w = conv.weight.reshape(conv.out_channels, -1, conv.in_channels_per_group)
    bias = conv.bias + (w * per_filter_shift[:, None, :]).sum(axis=(1, 2))
    return conv.with_(weight=weight, bias=bias)


def from_torch(module, input_shape: tuple[int, ...] | None = None, name: str = "model",
               fallback_input_shape: tuple[int, ...] | None = None) -> Graph:
    """A float IR graph equivalent to ``module`` in eval mode.

    Without ``input_shape`` it is read off a first Linear layer, else taken from
    ``fallback_input_shape`` (e.g. the shape of the data at hand).
    """
    torch = _torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    layers: list[Layer] = []
    used: set[str] = set()
    chain = _chain(module)
    pending = None  # (path, scale, shift) of a BatchNorm waiting for the next Linear or conv
    pad = None  # (path, padding, type name) of a padding module waiting for its conv
    pads = tuple(torch_spatial.spatial_types()[-4:])
    for index, (path, child) in enumerate(chain):
        last = index == len(chain) - 1
        if pad is not None and not isinstance(child, (nn.Conv1d, nn.Conv2d)):
            raise UnsupportedLayerError(f"module {pad[0]!r} ({pad[2]}) is folded into a conv right after it, but "
                                        f"{path!r} ({type(child).__name__}) follows it")
        if isinstance(child, nn.Linear):
            weight, bias = _linear_arrays(path, child)
            if pending is not None:
                # Linear(scale * x + shift) = (W diag(scale)) x + (W shift + b)
                _, scale, shift, _ = pending
                weight, bias = weight * scale[None, :], bias + weight @ shift
                pending = None
            layers.append(Dense(_layer_name(path, "dense", used), weight, bias))
        elif isinstance(child, (nn.Conv1d, nn.Conv2d)):
            layer = torch_spatial.conv_layer(path, child, _layer_name(path, "conv", used), pad and pad[1])
            pad = None
            if pending is not None:
                layer, pending = _fold_before_conv(pending, layer), None
            layers.append(layer)
        elif isinstance(child, pads):
            pad = (path, torch_spatial.padding_module(path, child), type(child).__name__)
        elif isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale, shift = _batchnorm_affine(path, child)
            if pending is None and layers and isinstance(layers[-1], WeightedLayer):
                layers[-1] = _fold_after(layers[-1], path, scale, shift)
            elif pending is None:
                pending = (path, scale, shift, type(child).__name__)
            else:
                pending = (pending[0], pending[1] * scale, pending[2] * scale + shift, pending[3])
        elif pending is not None and not isinstance(child, (nn.Identity, nn.Dropout)):
            raise UnsupportedLayerError(
                f"module {pending[0]!r} ({pending[3]}) cannot be folded: {path!r} ({type(child).__name__}) comes "
                "between it and the next Linear or conv; hwprune folds BatchNorm into an adjacent Linear or conv"
            )
        elif isinstance(child, nn.ReLU):
            layers.append(ReLU(_layer_name(path, "relu", used)))
        elif isinstance(child, torch_activations.module_types()):
            names = [_layer_name(path + suffix, prefix, used) for suffix, prefix in torch_activations.names(child)]
            layers.extend(torch_activations.activation_layers(path, child, names, layers[-1].name if layers else INPUT))
        elif isinstance(child, nn.Flatten):
            if child.start_dim != 1 or child.end_dim != -1:
                raise UnsupportedLayerError(f"module {path!r} (Flatten): only start_dim=1, end_dim=-1 is supported")
            layers.append(Flatten(_layer_name(path, "flatten", used)))
        elif isinstance(child, torch_spatial.spatial_types()):
            layers.append(torch_spatial.pool_layer(path, child, _layer_name(path, "pool", used)))
        elif isinstance(child, (nn.Identity, nn.Dropout)):
            continue
        elif isinstance(child, (nn.Softmax, nn.LogSoftmax)) and last:
            layers.append(Softmax(_layer_name(path, "softmax", used), log=isinstance(child, nn.LogSoftmax)))
        elif isinstance(child, (nn.Softmax, nn.LogSoftmax)):
            raise UnsupportedLayerError(f"module {path!r} ({type(child).__name__}): only supported as the last layer")
        else:
            raise UnsupportedLayerError(
                f"module {path!r} ({type(child).__name__}) is not supported; hwprune reads Linear, Conv1d/2d, "
                "MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d(1), ReLU, Sigmoid, Tanh, LeakyReLU, PReLU, "
                "Hardsigmoid, BatchNorm1d/2d (folded), Flatten, "
                "Identity, Dropout and a final Softmax"
            )
    if pending is not None:
        raise UnsupportedLayerError(f"module {pending[0]!r} ({pending[3]}) cannot be folded: no Linear or conv "
                                    "follows it")
    if pad is not None:
        raise UnsupportedLayerError(f"module {pad[0]!r} ({pad[2]}): no conv follows it to fold the padding into")
    if not is_c_identifier(name):
        raise ModelError(f"model name {name!r} must be a C identifier")
    if any(layer.spatial for layer in layers):
        return _channels_first_graph(name, layers, input_shape or fallback_input_shape)
    if input_shape is None and layers and isinstance(layers[0], Dense):
        input_shape = (layers[0].in_features,)
    if input_shape is None:
        input_shape = fallback_input_shape
    if input_shape is None:
        raise ModelError("cannot infer the input shape: the model does not start with a Linear layer; pass "
                         "input_shape (hwprune export takes it from --calibration)")
    return Graph.chain(name, tuple(input_shape), tuple(layers))


def _channels_first_graph(name: str, layers: list[Layer], shape) -> Graph:
    """The graph of a conv model: input channels-last, Linear columns after Flatten permuted."""
    if shape is None:
        raise ModelError("cannot infer the input shape of a conv model: pass input_shape as the model takes it, "
                         "(channels, length) or (channels, height, width) (hwprune export takes it from "
                         "--calibration)")
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ShapeError(f"a conv model takes (channels, length) or (channels, height, width) inputs; got {shape}")
    first = next(layer for layer in layers if layer.spatial)
    two_d = first.kind.endswith("2d")
    if len(shape) != (3 if two_d else 2):  # said here in the source's layout, not the IR's channels-last one
        raise ShapeError(f"layer {first.name!r} ({first.kind}) takes (channels, {'height, width' if two_d else 'length'})"
                         f" inputs as the source model does; got {shape} per example")
    graph = Graph.chain(name, (*shape[1:], shape[0]), tuple(layers), input_layout="channels_first")
    layers = list(graph.layers)
    for index, layer in enumerate(graph.layers):
        flat_in = graph.input_shape_of_layer(layer)
        if not isinstance(layer, Flatten) or len(flat_in) < 2:
            continue
        after = next((j for j in range(index + 1, len(layers)) if not isinstance(layers[j], (ReLU, Flatten))), None)
        if after is None or not isinstance(layers[after], Dense):
            raise UnsupportedLayerError(
                f"layer {layer.name!r} (Flatten) of a {flat_in} tensor must be followed by a Linear (hwprune "
                "flattens channels-last and reorders that Linear's columns)")
        dense = layers[after]
        layers[after] = dense.with_(weight=dense.weight[:, torch_spatial.flatten_permutation(flat_in)])
    return graph.with_layers(layers)


def to_torch(graph: Graph):
    """A float64 ``nn.Sequential`` computing ``graph`` (its float weights), for fine-tuning.

    Module names are the IR layer names and the weights are float64, so
    ``from_torch(to_torch(g))`` gives back ``g`` exactly.
    """
    torch = _torch()
    nn = torch.nn
    spatial = any(layer.spatial for layer in graph.layers)
    if spatial and graph.input_layout != "channels_first":
        raise UnsupportedLayerError(f"model {graph.name!r}: to_torch builds channels-first modules; this conv "
                                    "graph takes channels-last inputs")
    modules = {}
    swish = torch_activations.swish_sigmoids(graph)
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
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(modules))
