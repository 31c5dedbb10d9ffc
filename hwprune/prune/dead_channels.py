"""Dead-channel removal: a quantized graph without the channels whose value no output needs,
computing bit for bit what it computed before (both numeric dialects).

An output channel of a Dense or conv layer whose weights are all zero outputs a constant
(its bias through the accumulator, the result cast or requantization and the clamp); so do
the channels an activation or a pooling layer makes of a constant channel, when the
integer reference gives one value at every position. Each such constant is folded into
every weighted layer that reads it, exactly, then the channel goes:

- a Dense or conv reader: its weights on the channel are zeroed and, in the accumulator's
  units, ``sum(w) * (constant - pad)`` is added to its bias, where ``pad`` is what a padded
  tap holds (0 in ap_fixed, the input's zero point in the int8 dialect, whose kernels sum
  ``w * (x - zero_point)``). A kxk conv with padding sees ``pad`` at the border, not the
  constant: the fold is done only where every output position sums the same taps' weights
  (no padding, or a constant equal to ``pad``, or weights only on taps every position
  reads); otherwise the channel stays. In ap_fixed the fold also needs the sum to be exact in
  any order (``reference.dense_sum``'s ``fast`` rule: every product lands on the
  accumulator's grid, and the accumulator never overflows or wraps), else the channel
  stays, unless the constant is 0 (a product of 0 changes no accumulator).
- a depthwise reader: channel c's filters read nothing else, so after the fold they are all
  zero and output constants themselves (removed with the input channel, or kept with it).
- an Add, Multiply, Concatenate, a Reshape other than a flatten, a graph output: the channel
  stays.

A channel nothing needs (every weighted reader has zero weights on it; activations, pooling,
flatten and depthwise convs pass the question on to their own readers) is then removed
from its producer with its bias and per-channel parameters, and from every reader. Folding
can leave a reader's filter all zero, so the two steps repeat until nothing changes. A
tensor keeps at least one channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwprune import reference
from hwprune.errors import InternalError
from hwprune.ir.channels import (
    channel_count, is_channelwise, is_depthwise, is_flatten, remove_unread, take_outputs, tensors,
)
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense
from hwprune.ir.fixed import MAX_WIDTH, apply_overflow, cast, from_grid
from hwprune.ir.int8_types import INT32_MAX, INT32_MIN, Int8Affine
from hwprune.windows import as_2d, inside

MAX_ROUNDS = 64  # each round zeroes weights or removes channels; real graphs settle in a few


@dataclass
class DeadChannels:
    """What the pass did. ``removed``: tensor (layer name) -> the original output channels
    it lost; ``folded``: layer -> how many input channels' constants went into its bias;
    ``kept``: (reader, tensor, channel, why) of constant channels a reader could not absorb."""

    removed: dict[str, tuple[int, ...]] = field(default_factory=dict)
    filters_removed: int = 0  # output channels of weighted layers (Dense units, conv filters)
    folded: dict[str, int] = field(default_factory=dict)
    kept: list[tuple[str, str, int, str]] = field(default_factory=list)
    macs_before: int = 0
    macs_after: int = 0
    nonzero_macs_before: int = 0
    nonzero_macs_after: int = 0

    def to_json(self) -> dict:
        return {"filters_removed": self.filters_removed,
                "removed": {k: list(v) for k, v in self.removed.items()},
                "folded": dict(self.folded),
                "kept": [{"reader": r, "tensor": t, "channel": c, "why": w} for r, t, c, w in self.kept],
                "macs_before": self.macs_before, "macs_after": self.macs_after,
                "nonzero_macs_before": self.nonzero_macs_before, "nonzero_macs_after": self.nonzero_macs_after}

    def summary(self) -> str:
        return (f"{self.filters_removed} dead filters removed ({len(self.removed)} tensors lost channels), MACs "
                f"{self.macs_before:,} -> {self.macs_after:,}, on nonzero weights {self.nonzero_macs_before:,} -> "
                f"{self.nonzero_macs_after:,}; {len(self.kept)} constant channels kept")


def remove_dead_channels(graph: Graph) -> tuple[Graph, DeadChannels]:
    """``graph`` (quantized) without its dead channels, and what was done; a float graph
    comes back unchanged (``prune.graph.remove_dead_neurons`` handles float chains)."""
    report = DeadChannels(macs_before=graph.macs, nonzero_macs_before=graph.nonzero_macs)
    if not graph.is_quantized:
        report.macs_after, report.nonzero_macs_after = report.macs_before, report.nonzero_macs_before
        return graph, report
    counts = {name: channel_count(graph, name) for name in tensors(graph)}
    weighted = {layer.name for layer in graph.weighted_layers()}
    origin = {name: np.arange(n) for name, n in counts.items()}  # original index of each remaining channel
    kept: dict[tuple[str, str, int], str] = {}
    for _ in range(MAX_ROUNDS):
        graph, folded = _fold(graph, _constants(graph), kept, report.folded, origin)
        graph, removed = remove_unread(graph, origin)
        if not folded and not removed:
            break
    for name, remaining in origin.items():
        lost = sorted(set(range(counts[name])) - set(remaining.tolist()))
        if lost:
            report.removed[name] = tuple(lost)
            report.filters_removed += len(lost) if name in weighted else 0
    # a constant channel a reader could not absorb may have gone anyway, when nothing reads it
    report.kept = [(r, t, c, why) for (r, t, c), why in sorted(kept.items()) if c in set(origin[t].tolist())]
    report.macs_after, report.nonzero_macs_after = graph.macs, graph.nonzero_macs
    return graph, report


def check_same_outputs(graph: Graph, x_int: np.ndarray, y_int: np.ndarray, source) -> None:
    """A rewritten graph must compute the original's outputs on the test vectors: a bug in
    hwprune otherwise, reported with the first differing element."""
    got = reference.run(graph, x_int)
    if not np.array_equal(got, y_int):
        bad = tuple(int(i) for i in np.argwhere(got != y_int)[0])
        raise InternalError(f"{source}: dead-channel removal changed output {bad}: {int(got[bad])} instead of "
                            f"{int(y_int[bad])}")


def _pad_value(in_t) -> int:
    """What a padded tap holds, in the kernels' own terms (int8 sums ``w * (x - zp)``)."""
    return in_t.zero_point if isinstance(in_t, Int8Affine) else 0


# -- constants --------------------------------------------------------------------------------

def _uniform(y: np.ndarray) -> dict[int, int]:
    """Channels (last axis) of a one-vector output that hold one value everywhere."""
    flat = y.reshape(-1, y.shape[-1])
    same = np.all(flat == flat[:1], axis=0)
    return {int(c): int(flat[0, c]) for c in np.flatnonzero(same)}


def _constants(graph: Graph) -> dict[str, dict[int, int]]:
    """Tensor -> {channel: integer value} of the channels that are one value at every
    position whatever the input, as the integer reference computes them."""
    consts: dict[str, dict[int, int]] = {}
    for layer in graph.layers:
        found: dict[int, int] = {}
        if layer.weighted:
            dead = np.flatnonzero(~np.any(layer.filter_matrix != 0, axis=1))
            if dead.size:
                (in_t,) = graph.input_types(layer)
                shape = graph.input_shape_of_layer(layer)
                if is_depthwise(layer):  # the dead filters alone, each reading a channel of its own
                    shape = (*shape[:-1], dead.size)
                # their weights are all zero: any input gives the constants
                x = np.zeros((1, *shape), dtype=np.int64)
                y = reference.KERNELS[layer.kind](take_outputs(layer, dead), x, in_t)
                found = {int(dead[j]): v for j, v in _uniform(y).items()}
        elif layer.arity == 1 and consts.get(layer.inputs[0]):
            source = consts[layer.inputs[0]]
            if is_channelwise(layer):
                channels = np.array(sorted(source))
                (in_t,) = graph.input_types(layer)
                shape = graph.input_shape_of_layer(layer)
                x = np.broadcast_to(np.array([source[c] for c in channels], dtype=np.int64),
                                    (1, *shape[:-1], len(channels))).copy()
                y = reference.KERNELS[layer.kind](layer, x, in_t)
                found = {int(channels[j]): v for j, v in _uniform(y).items()}
            elif is_flatten(graph, layer):
                shape = graph.input_shape_of_layer(layer)
                c_in = int(shape[-1]) if shape else 1
                positions = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
                found = {p * c_in + c: v for p in range(positions) for c, v in source.items()}
        if found:
            consts[layer.name] = found
    return consts


# -- folding ----------------------------------------------------------------------------------

def _tap_patterns(graph: Graph, layer) -> np.ndarray:
    """``(P, taps)`` bool: the distinct sets of kernel taps that output positions read inside
    the input (one all-true row without padding)."""
    if not hasattr(layer, "kernel_size"):
        return np.ones((1, 1), dtype=bool)
    taps = int(np.prod(layer.kernel_size))
    if not any(p for pair in layer.padding for p in pair):
        return np.ones((1, taps), dtype=bool)
    x = np.zeros((1, *graph.input_shape_of_layer(layer)))
    x2, window, stride, padding = as_2d(x, layer)
    cells = inside(x2.shape[1:3], window, stride, padding).reshape(-1, taps)
    return np.unique(cells, axis=0)


def _slices(layer, w: np.ndarray, c: int, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The filters of ``layer`` (weights ``w``) that read input channel ``c``, and their
    weights on it, ``(filters, taps)``."""
    if isinstance(layer, Dense):
        return np.arange(w.shape[0]), w[:, c:c + 1]
    taps = w.reshape(w.shape[0], -1, w.shape[-1])
    if is_depthwise(layer):
        m = layer.multiplier(in_channels)
        filters = np.arange(c * m, (c + 1) * m)
        return filters, taps[filters, :, 0]
    return np.arange(w.shape[0]), taps[:, :, c]


def _zero_slice(layer, weight: np.ndarray, c: int, in_channels: int) -> None:
    if isinstance(layer, Dense):
        weight[:, c] = 0
    elif is_depthwise(layer):
        m = layer.multiplier(in_channels)
        weight[c * m:(c + 1) * m] = 0
    else:
        weight[..., c] = 0


def _fold(graph: Graph, consts, kept: dict, folded_count: dict[str, int], origin) -> tuple[Graph, bool]:
    """Every weighted reader of a constant channel with its bias absorbing it, where exact."""
    changed = False
    layers = []
    for layer in graph.layers:
        source = consts.get(layer.inputs[0]) if layer.weighted else None
        if source:
            new = _fold_layer(graph, layer, source, kept, origin[layer.inputs[0]])
            if new is not None:
                folded_count[layer.name] = folded_count.get(layer.name, 0) + new[1]
                layer, changed = new[0], True
        layers.append(layer)
    return (graph.with_layers(layers), True) if changed else (graph, False)


def _fold_layer(graph: Graph, layer, source: dict[int, int], kept: dict, origin: np.ndarray):
    """(the layer with ``source``'s constants folded in, how many) or None if none could be."""
    (in_t,) = graph.input_types(layer)
    int8 = isinstance(in_t, Int8Affine)
    pad = _pad_value(in_t)
    in_channels = channel_count(graph, layer.inputs[0])
    weight_int = layer.weight.astype(np.int64) if int8 else from_grid(layer.weight, layer.weight_t)
    patterns = _tap_patterns(graph, layer)
    fast = True
    if not int8:
        w, acc0 = reference.dense_integers(layer)
        plan = reference.dense_sum(layer, in_t, w, acc0)
        fast = plan.fast
    delta = np.zeros(layer.out_channels, dtype=object)  # Python integers: exact whatever the sums
    weight = layer.weight.copy()
    done = []
    for c, value in sorted(source.items()):
        filters, slab = _slices(layer, weight_int, c, in_channels)
        if not slab.any():
            continue
        where = (layer.name, layer.inputs[0], int(origin[c]))  # original channel numbers
        if value != pad:
            if not fast:
                kept[where] = "the accumulator's sum depends on its order (rounded products or saturation)"
                continue
            sums = patterns.astype(np.int64) @ slab.T  # (P, filters): each position's taps
            if np.any(sums != sums[:1]):
                kept[where] = "padding: border positions read the padding value, not the constant"
                continue
            for j, o in enumerate(filters):
                delta[o] += int(sums[0, j]) * (value - pad)
        _zero_slice(layer, weight, c, in_channels)
        done.append(where)
    if not done:
        return None
    folded = _with_bias(layer, weight, delta, int8, None if int8 else (acc0, plan))
    for where in done:
        if folded is None:
            kept[where] = "the folded bias does not fit a bias type"
        else:
            kept.pop(where, None)
    return None if folded is None else (folded, len(done))


def _with_bias(layer, weight: np.ndarray, delta: np.ndarray, int8: bool, fixed):
    """``layer`` with ``weight`` and ``delta`` (accumulator units of the products, per filter)
    added where it starts summing; None where no bias can hold it."""
    if not any(delta):
        return layer.with_(weight=weight)
    if int8:
        bias = layer.bias + np.array([float(d) for d in delta])
        if bias.min() < INT32_MIN or bias.max() > INT32_MAX:
            return None  # not for a layer whose accumulator fits int32: |delta| is below its bound
        return layer.with_(weight=weight, bias=bias)
    acc0, plan = fixed
    start = np.array([int(a) + (int(d) << plan.shift) for a, d in zip(acc0, delta)], dtype=object)
    if not plan.never_overflows:  # a wrapping accumulator: the sum is modular, so is its start
        start = apply_overflow(np.array([int(v) for v in start], dtype=np.int64), layer.accum_t)
    bias, bias_t = _bias_for(layer, np.array([int(v) for v in start], dtype=np.int64))
    return None if bias is None else layer.with_(weight=weight, bias=bias, bias_t=bias_t)


def _bias_for(layer, acc0: np.ndarray):
    """A bias (real values) and its type whose cast to the accumulator is exactly ``acc0``:
    the layer's own ``bias_t`` when it holds them, else a signed type as fine as both the
    bias and the accumulator, wide enough; (None, None) if none fits the reference's widths."""
    acc_t, bias_t = layer.accum_t, layer.bias_t
    frac = max(bias_t.frac_bits, acc_t.frac_bits)
    bits = max(int(abs(int(v))).bit_length() for v in acc0) + (frac - acc_t.frac_bits) + 1
    width = max(bits, bias_t.width, frac + 1)
    candidates = [bias_t] + ([bias_t.with_(width=width, int_bits=width - frac, signed=True)] if width <= MAX_WIDTH else [])
    for t in candidates:
        shift = t.frac_bits - acc_t.frac_bits
        if shift < 0 and np.any(acc0 % (1 << -shift)):
            continue
        ints = acc0 << shift if shift >= 0 else acc0 >> -shift
        if ints.min() < t.min_int or ints.max() > t.max_int:
            continue
        if np.array_equal(cast(ints, t.frac_bits, acc_t), acc0):
            return np.ldexp(ints.astype(np.float64), -t.frac_bits), t
    return None, None
