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
- ``Flatten`` maps feature ``f`` to channel ``f % C`` of its channels-last input;
- a Dense or a conv (not depthwise) starts new slots: its output rows, the *producers*.

A class of joined slots is a *unit*: the producer rows in it, and every consumer's input
columns reading it, go together. Units that touch a graph input or output, or a layer
without a rule here (Reshape, a per-channel PReLU, a depthwise multiplier, Softmax), are
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
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, Layer

#: Kinds whose output channel c is their input channel c (one input).
CHANNELWISE = ("relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "identity", "maxpool1d", "maxpool2d",
               "avgpool1d", "avgpool2d", "globalavgpool1d", "globalavgpool2d")


@dataclass(frozen=True)
class Unit:
    """Joined channels: ``producers`` are the (layer, output row) pairs that make them;
    ``family`` the sorted producer layer names; ``score`` the mean |weight| of the rows."""

    producers: tuple[tuple[str, int], ...]
    slots: tuple[tuple[str, int], ...]
    family: tuple[str, ...]
    score: float


class _Slots:
    def __init__(self, graph: Graph) -> None:
        self.base: dict[str, int] = {}
        total = 0
        for name in (*graph.input_names, *(layer.name for layer in graph.layers)):
            self.base[name] = total
            total += graph.shape_of(name)[-1]
        self.parent = list(range(total))
        self.pinned = np.zeros(total, dtype=bool)
        self.names = {v: k for k, v in self.base.items()}

    def id(self, tensor: str, c: int) -> int:
        return self.base[tensor] + c

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
            self.pinned[min(ra, rb)] |= self.pinned[max(ra, rb)]

    def pin(self, tensor: str, count: int) -> None:
        for c in range(count):
            self.pinned[self.find(self.id(tensor, c))] = True


def _link(graph: Graph, slots: _Slots, layer: Layer) -> None:
    """Join (or pin) the slots of ``layer``'s output and inputs, by the rules of the module doc."""
    out = graph.shape_of(layer.name)[-1]
    ins = [graph.shape_of(s)[-1] for s in layer.inputs]
    name = layer.name
    if layer.weighted and not getattr(layer, "depthwise", False):
        return  # new slots: the producer rows
    if layer.weighted:  # depthwise
        if layer.multiplier(ins[0]) != 1:
            slots.pin(name, out), slots.pin(layer.inputs[0], ins[0])
            return
        channelwise = True
    else:
        channelwise = layer.kind in CHANNELWISE or (layer.kind == "leaky_relu" and not layer.per_channel)
    if channelwise:
        for c in range(out):
            slots.join(slots.id(name, c), slots.id(layer.inputs[0], c))
    elif layer.kind in ("add", "multiply"):
        for source in layer.inputs:
            for c in range(out):
                slots.join(slots.id(name, c), slots.id(source, c))
    elif layer.kind == "concatenate":
        rank = len(graph.shape_of(name))
        if layer.resolved_axis(rank) == rank - 1:
            offset = 0
            for source, n in zip(layer.inputs, ins):
                for c in range(n):
                    slots.join(slots.id(name, offset + c), slots.id(source, c))
                offset += n
        else:
            for source in layer.inputs:
                for c in range(out):
                    slots.join(slots.id(name, c), slots.id(source, c))
    elif layer.kind == "flatten":
        channels = ins[0]
        for f in range(out):
            slots.join(slots.id(name, f), slots.id(layer.inputs[0], f % channels))
    else:  # no rule: what it reads and writes stays whole
        slots.pin(name, out)
        for source, n in zip(layer.inputs, ins):
            slots.pin(source, n)


def _score(layer, row: int) -> float:
    return float(np.abs(layer.weight[row]).mean())


def channel_units(graph: Graph) -> list[Unit]:
    """The units of ``graph`` that can be removed (not pinned), in the order of their first
    producer row."""
    slots = _Slots(graph)
    for layer in graph.layers:
        _link(graph, slots, layer)
    for name in graph.input_names:
        slots.pin(name, graph.shape_of(name)[-1])
    for name in graph.outputs:
        slots.pin(name, graph.shape_of(name)[-1])
    members: dict[int, list[int]] = {}
    for i in range(len(slots.parent)):
        members.setdefault(slots.find(i), []).append(i)
    producers: dict[int, list[tuple[str, int]]] = {}
    for layer in graph.weighted_layers():
        if not getattr(layer, "depthwise", False):
            for row in range(layer.out_channels):
                producers.setdefault(slots.find(slots.id(layer.name, row)), []).append((layer.name, row))
    units = []
    for root, rows in producers.items():
        if slots.pinned[root]:
            continue
        where = []
        for i in members[root]:
            tensor = max((b, n) for n, b in slots.base.items() if b <= i)
            where.append((tensor[1], i - tensor[0]))
        score = float(np.mean([_score(graph.layer(n), r) for n, r in rows]))
        units.append(Unit(tuple(rows), tuple(where), tuple(sorted({n for n, _ in rows})), score))
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
    keep = {name: np.ones(graph.shape_of(name)[-1], dtype=bool)
            for name in (*graph.input_names, *(layer.name for layer in graph.layers))}
    for u in units:
        for tensor, c in u.slots:
            keep[tensor][c] = False
    layers = []
    for layer in graph.layers:
        if layer.weighted:
            rows = keep[layer.name]
            weight, bias = layer.weight[rows], layer.bias[rows]
            if not getattr(layer, "depthwise", False):
                columns = keep[layer.inputs[0]]
                weight = weight[:, columns] if isinstance(layer, Dense) else weight[..., columns]
            if weight.shape != layer.weight.shape:
                layer = layer.with_(weight=weight, bias=bias)
        layers.append(layer)
    return graph.with_layers(layers)
