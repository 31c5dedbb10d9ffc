"""Channels that must go together in a graph, and removing them: structured pruning of
graphs with branches and merges.

Every tensor's last axis (channels, or the features of a 1-D tensor) is a row of slots.
Slots that are the same channel seen from different layers are joined (a union-find):

- a layer that works channel by channel (ReLU, Clip, the activations, pooling, Identity)
  joins its output channel ``c`` to its input channel ``c``; so does a depthwise conv (its
  filter ``c`` reads input channel ``c`` only);
- ``Add`` and ``Multiply`` join channel ``c`` of the result and of every operand (an
  operand broadcast over positions has the same last axis): removing a filter of one
  branch of an ``Add`` removes the matching channel of the other branch;
- ``Concatenate`` on the channel axis maps operand ``k``'s channel ``c`` to the result's
  channel ``offset_k + c``; on another axis it joins channel ``c`` of every operand;
- ``Flatten`` (and a Reshape to one axis) maps feature ``f`` to channel ``f % C`` of its
  channels-last input;
- a Dense or a conv (not depthwise) starts new slots: its output rows, the *producers*.

A class of joined slots is a *unit*: the producer rows in it, and every consumer's input
columns reading it, go together. Units that touch a graph input or output, or a layer
without a rule here (a Reshape other than to one axis, a per-channel PReLU or BatchNorm, a
depthwise multiplier, Softmax), are
*pinned* and stay. ``remove_units`` deletes units physically: producer rows (weights and
bias), depthwise filters, and consumer columns (a conv's input channel, a Dense column,
every position of a flattened channel); shapes follow, and the graph checks them again.

Units are ranked by the mean absolute weight of their producer rows (the L1 filter norm
of Li et al. 2017, divided by the row size so that rows of different fan-in compare, as
``criteria``'s global scope does). Units with the same set of producer layers form a
*family*, the counterpart of a layer for ``scope="layer"``; every family keeps one unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwprune.errors import OptionError
from hwprune.ir.channels import _Groups, channel_count, is_channelwise, is_depthwise, is_flatten, take_outputs, tensors
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, Layer


@dataclass(frozen=True)
class Unit:
    """Joined channels: ``producers`` are the (layer, output row) pairs that make them;
    ``family`` the sorted producer layer names; ``score`` the mean |weight| of the rows."""

    producers: tuple[tuple[str, int], ...]
    slots: tuple[tuple[str, int], ...]
    family: tuple[str, ...]
    score: float


def _pin(graph: Graph, groups: _Groups, tensor: str) -> None:
    start = groups.offset[tensor]
    groups.blocked[start:start + channel_count(graph, tensor)] = True


def _link(graph: Graph, groups: _Groups, layer: Layer) -> None:
    """Join (or pin) the slots of ``layer``'s output and inputs, by the rules of the module doc
    (``ir.channels`` holds the per-layer properties and the union-find it shares with the
    dead-channel pass, which keeps merges whole; here an Add or a Concatenate ties)."""
    name, out = layer.name, channel_count(graph, layer.name)
    join = groups.union
    if layer.weighted and not is_depthwise(layer):
        return  # new slots: the producer rows
    if is_depthwise(layer) and layer.multiplier(channel_count(graph, layer.inputs[0])) != 1:
        _pin(graph, groups, name), _pin(graph, groups, layer.inputs[0])
    elif is_depthwise(layer) or is_channelwise(layer):
        for c in range(out):
            join(groups.node(name, c), groups.node(layer.inputs[0], c))
    elif layer.kind in ("add", "multiply"):
        for source in layer.inputs:
            for c in range(out):
                join(groups.node(name, c), groups.node(source, c))
    elif layer.kind == "concatenate":
        rank = len(graph.shape_of(name))
        offset, on_channels = 0, layer.resolved_axis(rank) == rank - 1
        for source in layer.inputs:
            n = channel_count(graph, source)
            for c in range(n):
                join(groups.node(name, offset + c if on_channels else c), groups.node(source, c))
            offset += n
    elif is_flatten(graph, layer):
        channels = channel_count(graph, layer.inputs[0])
        for f in range(out):
            join(groups.node(name, f), groups.node(layer.inputs[0], f % channels))
    else:  # no rule: what it reads and writes stays whole
        for tensor in (name, *layer.inputs):
            _pin(graph, groups, tensor)


def _score(layer, row: int) -> float:
    return float(np.abs(layer.weight[row]).mean())


def channel_units(graph: Graph) -> list[Unit]:
    """The units of ``graph`` that can be removed (not pinned), in the order of their first
    producer row."""
    groups = _Groups(graph)
    for layer in graph.layers:
        _link(graph, groups, layer)
    for name in (*graph.input_names, *graph.outputs):
        _pin(graph, groups, name)
    roots = np.array([groups.find(i) for i in range(len(groups.parent))])
    pinned = set(roots[groups.blocked].tolist())
    members: dict[int, list[tuple[str, int]]] = {}
    for name in tensors(graph):
        for c in range(channel_count(graph, name)):
            members.setdefault(int(roots[groups.node(name, c)]), []).append((name, c))
    producers: dict[int, list[tuple[str, int]]] = {}
    for layer in graph.weighted_layers():
        if not is_depthwise(layer):
            for row in range(layer.out_channels):
                producers.setdefault(int(roots[groups.node(layer.name, row)]), []).append((layer.name, row))
    units = []
    for root, rows in producers.items():
        if root in pinned:
            continue
        score = float(np.mean([_score(graph.layer(n), r) for n, r in rows]))
        units.append(Unit(tuple(rows), tuple(members[root]), tuple(sorted({n for n, _ in rows})), score))
    return sorted(units, key=lambda u: u.producers[0])


def candidates(graph: Graph, units: list[Unit], method: str) -> list[Unit]:
    """The units ``method`` prunes: "filters" those made by convs only, "neurons" by Dense only."""
    if method not in ("filters", "neurons"):
        raise OptionError(f"structured pruning of a graph removes filters or neurons, not {method!r}")
    dense = method == "neurons"
    return [u for u in units if all(isinstance(graph.layer(n), Dense) == dense for n in u.family)]


def choose(units: list[Unit], count, scope: str) -> list[Unit]:
    """The units to remove: ``count`` (an int for scope "global", family -> int for
    "layer") of the lowest scores (ties: the earlier unit), every family keeping one."""
    families: dict[tuple[str, ...], list[Unit]] = {}
    for u in units:
        families.setdefault(u.family, []).append(u)
    chosen = []
    if scope == "layer":
        for family, members in families.items():
            n = min(int(count.get(family, 0)), len(members) - 1)
            chosen += sorted(members, key=lambda u: u.score)[:max(n, 0)]
        return chosen
    left = {family: len(members) for family, members in families.items()}
    for u in sorted(units, key=lambda u: u.score):
        if len(chosen) >= count:
            break
        if left[u.family] > 1:
            chosen.append(u)
            left[u.family] -= 1
    return chosen


def remove_units(graph: Graph, units: list[Unit]) -> Graph:
    """``graph`` without ``units``: producer rows, depthwise filters and consumer columns
    deleted (see the module doc); the smaller graph checks its shapes again."""
    if graph.is_quantized:
        raise OptionError(f"model {graph.name!r} is quantized; remove channels from the float graph")
    keep = {name: np.ones(channel_count(graph, name), dtype=bool) for name in tensors(graph)}
    for u in units:
        for tensor, c in u.slots:
            keep[tensor][c] = False
    layers = []
    for layer in graph.layers:
        if layer.weighted:
            layer = take_outputs(layer, keep[layer.name])  # weights, bias, any per-output array
            if not is_depthwise(layer):
                columns = keep[layer.inputs[0]]
                layer = layer.with_(weight=layer.weight[:, columns] if isinstance(layer, Dense)
                                    else layer.weight[..., columns])
        elif layer.kind == "reshape" and is_flatten(graph, layer):
            layer = layer.with_(target_shape=(int(keep[layer.name].sum()),))
        layers.append(layer)
    return graph.with_layers(layers)
