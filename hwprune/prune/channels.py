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

A removed unit is first made constant: its producer rows' weights are zeroed, so each row
outputs its bias, and every tensor of the unit holds what the layers make of it (act(bias)
after an activation, the sum of every operand's constant after an Add, a depthwise conv's
output of a constant channel, the operand's channel at its offset after a Concatenate).
Those values, read from a float run of the zeroed graph, are folded into the bias of every
consumer that keeps reading the unit's columns (``_fold_constants``), so removing a unit
changes the function no more than zeroing its producer rows' weights does. The fold is
exact for a Dense, a 1x1 conv and a conv without padding; see ``_absorb`` for a kxk conv
whose zero padding makes its border read something else than the constant.

Units are ranked by the mean absolute weight of their producer rows (the L1 filter norm
of Li et al. 2017, divided by the row size so that rows of different fan-in compare, as
``criteria``'s global scope does). Units with the same set of producer layers form a
*family*, the counterpart of a layer for ``scope="layer"``; every family keeps one unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwprune.errors import OptionError
from hwprune.ir.channels import ChannelGroups, channel_count, is_channelwise, is_depthwise, is_flatten, take_outputs, tensors
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, Layer
from hwprune.quant.calibrate import float_layer


@dataclass(frozen=True)
class Unit:
    """Joined channels: ``producers`` are the (layer, output row) pairs that make them;
    ``family`` the sorted producer layer names; ``score`` the mean |weight| of the rows."""

    producers: tuple[tuple[str, int], ...]
    slots: tuple[tuple[str, int], ...]
    family: tuple[str, ...]
    score: float


def _pin(graph: Graph, groups: ChannelGroups, tensor: str) -> None:
    start = groups.offset[tensor]
    groups.blocked[start:start + channel_count(graph, tensor)] = True


def _link(graph: Graph, groups: ChannelGroups, layer: Layer) -> None:
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
    groups = ChannelGroups(graph)
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
    graph = _fold_constants(graph, units)
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


def _probe(graph: Graph) -> dict[str, np.ndarray]:
    """Every tensor of a float run of ``graph`` on two random inputs (IR layout): a channel
    whose two values agree does not depend on the input."""
    rng = np.random.default_rng(0)
    values = {name: rng.normal(size=(2, *graph.shape_of(name))) for name in graph.input_names}
    for layer in graph.layers:
        values[layer.name] = float_layer(layer, [values[s] for s in layer.inputs])
    return values


def _fold_constants(graph: Graph, units: list[Unit]) -> Graph:
    """``graph`` with the constants the channels of ``units`` hold once their producer rows
    are zero folded into the bias of every weighted layer reading them (not depthwise: a
    depthwise filter of a removed channel goes with it, its output is part of the unit)."""
    rows: dict[str, list[int]] = {}
    for u in units:
        for name, r in u.producers:
            rows.setdefault(name, []).append(r)
    if not rows:
        return graph
    zeroed = []
    for layer in graph.layers:
        if layer.name in rows:
            weight = layer.weight.copy()
            weight[rows[layer.name]] = 0.0
            layer = layer.with_(weight=weight)
        zeroed.append(layer)
    values = _probe(graph.with_layers(zeroed))
    removed: dict[str, list[int]] = {}
    for u in units:
        for tensor, c in u.slots:
            removed.setdefault(tensor, []).append(c)
    layers = []
    for layer in graph.layers:
        source = layer.inputs[0] if layer.weighted and not is_depthwise(layer) else None
        if source in removed:
            value = values[source]
            # every channel of a unit is computed from zeroed rows only, so it cannot depend
            # on the input; a channel that does (no layer rule makes one today) is left out
            channels = [c for c in removed[source] if np.array_equal(value[0, ..., c], value[1, ..., c])]
            if channels:
                layer = _absorb(layer, value[:1], channels)
        layers.append(layer)
    return graph.with_layers(layers)


def _absorb(layer, value: np.ndarray, channels: list[int]):
    """``layer`` (Dense or conv, not depthwise) with the contribution of input ``channels``
    (their values in ``value``, one sample) added to its bias."""
    x = np.zeros_like(value)
    x[..., channels] = value[..., channels]
    out = float_layer(layer.with_(bias=np.zeros_like(layer.bias)), [x])
    flat = out.reshape(-1, out.shape[-1])
    scale = max(1.0, float(np.abs(flat).max()))
    if np.allclose(flat, flat[:1], rtol=0, atol=1e-12 * scale):
        delta = flat[0]  # the same at every output position: exact
    else:
        # a kxk conv with zero padding and a nonzero constant: border positions read zeros
        # where the interior reads the constant, which no bias can express. The interior's
        # value (every tap on the constant, the channel's mean over positions) is folded:
        # exact inside, off on the border rows and columns, still closer than dropping it
        w = layer.weight.reshape(layer.out_channels, -1, layer.weight.shape[-1])[:, :, channels]
        mean = value.reshape(-1, value.shape[-1])[:, channels].mean(axis=0)
        delta = w.sum(axis=1) @ mean
    return layer.with_(bias=(layer.bias + delta).astype(layer.bias.dtype))
