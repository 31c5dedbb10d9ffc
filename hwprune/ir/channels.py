"""Channels as units a graph rewrite can remove: which tensors' channels are tied together
(an activation's or pooling's channel c is its input's channel c, a depthwise conv's filters
belong to their input channel, a flattened feature to the channel it came from), and the
removal of the channels no output needs (``prune.dead_channels`` folds constants first so that
dead channels become such channels).
"""

from __future__ import annotations

import numpy as np

from hwprune.ir.graph import Graph


# -- structure --------------------------------------------------------------------------------


def tensors(graph: Graph) -> list[str]:
    return [*graph.input_names, *(layer.name for layer in graph.layers)]


def channel_count(graph: Graph, name: str) -> int:
    shape = graph.shape_of(name)
    return int(shape[-1]) if shape else 1


def is_depthwise(layer) -> bool:
    return layer.weighted and bool(getattr(layer, "depthwise", False))


def is_flatten(graph: Graph, layer) -> bool:
    """Flatten, or a Reshape to one axis: feature ``p * C + c`` is channel c at position p."""
    return layer.kind == "flatten" or (layer.kind == "reshape" and len(graph.shape_of(layer.name)) == 1)


def is_channelwise(layer) -> bool:
    return layer.channelwise and layer.arity == 1 and not getattr(layer, "per_channel", False)


def take_outputs(layer, keep: np.ndarray):
    """A weighted layer with only the output channels ``keep`` (weights, bias, per-channel
    parameters: every array whose first axis runs over the output channels)."""
    n = layer.out_channels
    changes = {k: v[keep] for k, v in layer.arrays().items() if v.ndim >= 1 and v.shape[0] == n}
    return layer.with_(**changes)


# -- removal ----------------------------------------------------------------------------------

class ChannelGroups:
    """Union-find over (tensor, channel) nodes numbered ``offset[tensor] + channel``."""

    def __init__(self, graph: Graph):
        self.offset, total = {}, 0
        for name in tensors(graph):
            self.offset[name] = total
            total += channel_count(graph, name)
        self.parent = np.arange(total)
        self.blocked = np.zeros(total, dtype=bool)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def node(self, tensor: str, channel: int) -> int:
        return self.offset[tensor] + int(channel)


def _link_and_block(graph: Graph) -> ChannelGroups:
    groups = ChannelGroups(graph)

    def block(tensor, channels=None):
        n = channel_count(graph, tensor)
        idx = np.arange(n) if channels is None else np.asarray(channels, dtype=np.int64)
        groups.blocked[groups.offset[tensor] + idx] = True

    for name in (*graph.input_names, *graph.outputs):
        block(name)
    for layer in graph.layers:
        source = layer.inputs[0]
        if layer.arity != 1:
            for s in layer.inputs:
                block(s)
            block(layer.name)
        elif is_depthwise(layer):
            m = layer.multiplier(channel_count(graph, source))
            for o in range(layer.out_channels):
                groups.union(groups.node(source, o // m), groups.node(layer.name, o))
        elif layer.weighted:
            w = layer.weight.reshape(layer.out_channels, -1, layer.weight.shape[-1])
            block(source, np.flatnonzero(np.any(w != 0, axis=(0, 1))))
        elif is_channelwise(layer):
            for c in range(channel_count(graph, source)):
                groups.union(groups.node(source, c), groups.node(layer.name, c))
        elif is_flatten(graph, layer):
            c_in = channel_count(graph, source)
            for f in range(channel_count(graph, layer.name)):
                groups.union(groups.node(source, f % c_in), groups.node(layer.name, f))
        else:  # a reader or writer that mixes or rearranges channels
            block(source)
            block(layer.name)
    return groups


def _removable(graph: Graph) -> dict[str, np.ndarray]:
    """Tensor -> bool mask of the channels to remove (every tensor keeps one)."""
    groups = _link_and_block(graph)
    n = len(groups.parent)
    roots = np.array([groups.find(i) for i in range(n)])
    while True:
        blocked_roots = np.zeros(n, dtype=bool)
        blocked_roots[roots[groups.blocked]] = True
        remove = ~blocked_roots[roots]
        emptied = [name for name in tensors(graph)
                   if remove[groups.offset[name]:groups.offset[name] + channel_count(graph, name)].all()]
        if not emptied:
            break
        for name in emptied:  # a tensor of no channels is no tensor: its first channel stays
            groups.blocked[groups.offset[name]] = True
    return {name: remove[groups.offset[name]:groups.offset[name] + channel_count(graph, name)]
            for name in tensors(graph)}


def remove_unread(graph: Graph, origin: dict[str, np.ndarray]) -> tuple[Graph, bool]:
    """``graph`` without the channels no output needs: every weighted reader has zero weights
    on them, and activations, pooling, flatten and depthwise convs pass the question on to
    their own readers; they go from their producer (a weighted layer's filter, bias and
    per-channel parameters) and from every reader. ``origin`` (tensor -> the original index
    of each of its channels) is updated; True if anything went."""
    remove = _removable(graph)
    if not any(mask.any() for mask in remove.values()):
        return graph, False
    keep = {name: np.flatnonzero(~mask) for name, mask in remove.items()}
    layers = []
    for layer in graph.layers:
        source = layer.inputs[0] if layer.arity == 1 else None
        if layer.weighted:
            layer = take_outputs(layer, keep[layer.name])
            if not is_depthwise(layer):
                w = layer.weight
                layer = layer.with_(weight=w[:, keep[source]] if w.ndim == 2 else w[..., keep[source]])
        elif layer.kind == "reshape" and is_flatten(graph, layer):
            layer = layer.with_(target_shape=(len(keep[layer.name]),))
        layers.append(layer)
    for name in origin:
        origin[name] = origin[name][keep[name]]
    return graph.with_layers(layers), True
