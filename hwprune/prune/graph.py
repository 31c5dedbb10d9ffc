"""Pruning applied to an IR graph, through torch twins of its layers (``frontends.torch``).

Graph-only callers (export, sweep trials) use these without importing torch unless a
graph actually needs the round trip.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import OptionError
from hwprune.frontends.torch_spatial import to_torch_modules
from hwprune.ir.graph import Graph


def prune_graph(graph: Graph, sparsity: float) -> Graph:
    """One-shot layer-wise magnitude pruning of a float graph (the quick estimate of export).

    The masks come from ``prune.criteria`` on torch twins of the weighted layers alone (a
    graph with branches has no ``nn.Sequential`` twin), and are applied to the IR weights."""
    if graph.is_quantized:
        raise OptionError("--sparsity applies to float models; this graph is quantized already (prune before quantizing)")
    # torch (and prune.criteria, which imports it) load only when a graph is pruned: exporting does not need it
    import torch

    from hwprune.prune.criteria import compute_masks

    twins = torch.nn.ModuleDict()
    for layer in graph.weighted_layers():
        if layer.kind == "dense":
            twin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                twin.weight.copy_(torch.tensor(layer.weight))
        else:
            twin = dict(to_torch_modules(layer, torch.float64, graph.input_shape_of_layer(layer)[-1]))[layer.name]
        twins[layer.name] = twin
    masks = compute_masks(twins, sparsity, method="magnitude", scope="layer")
    layers = []
    for layer in graph.layers:
        if layer.name in masks:
            keep = masks[layer.name].numpy()
            keep = keep if layer.kind == "dense" else np.moveaxis(keep, 1, -1)  # torch's (out, in, *k) to the IR's
            layer = layer.with_(weight=layer.weight * keep)
        layers.append(layer)
    return graph.with_layers(layers)


def _has_zero_slice(weight: np.ndarray) -> bool:
    """Whether an output unit (axis 0) or an input unit (last axis) of a weight is all zero:
    a dead unit needs one or the other."""
    nonzero = weight != 0
    return bool((~nonzero.reshape(nonzero.shape[0], -1).any(axis=1)).any()
                or (~np.moveaxis(nonzero, -1, 0).reshape(nonzero.shape[-1], -1).any(axis=1)).any())


def remove_dead_neurons(graph: Graph) -> tuple[Graph, dict[str, int]]:
    """Drop Dense units and conv filters that read nothing (all-zero weights) or that
    nothing reads.

    A dead unit still outputs a constant, ``relu(bias)``; it is folded into the next
    layer's bias first, so the float function does not change
    (``prune.structured.remove_pruned_neurons``). Returns the smaller graph and the
    number of units removed per layer.
    """
    from hwprune.frontends.torch import from_torch, to_torch  # imports torch (seconds): loaded when this runs
    if graph.is_quantized:
        return graph, {}
    if any(getattr(layer, "depthwise", False) for layer in graph.layers):
        return graph, {}  # a depthwise conv ties its filters to its input channels: kept whole
    if any(getattr(layer, "per_channel", False) or layer.kind == "batchnorm" for layer in graph.layers):
        return graph, {}  # PReLU's slopes and a BatchNorm's scales are tied to their channels: kept whole
    if len(graph.input_shape) > 1 and graph.input_layout == "channels_last":
        return graph, {}  # a channels-last model (Keras) has no torch twin to prune through
    if not graph.is_chain:
        return graph, {}  # a unit feeding an Add or a Concatenate is tied to others: kept whole
    if not any(_has_zero_slice(layer.weight) for layer in graph.weighted_layers()):
        return graph, {}  # no unit without inputs and none without readers: skip the torch round trip
    from hwprune.prune.structured import remove_pruned_neurons  # imports torch: loaded only for a round trip

    smaller = from_torch(remove_pruned_neurons(to_torch(graph)), graph.source_input_shape, graph.name)
    removed = {
        a.name: a.out_channels - b.out_channels
        for a, b in zip(graph.weighted_layers(), smaller.weighted_layers())
        if a.out_channels != b.out_channels
    }
    return (smaller, removed) if removed else (graph, {})
