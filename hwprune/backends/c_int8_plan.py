"""How the int8 C lays a graph out: each weighted layer's storage and the kernel that reads
it (``stored_dense``, ``pointwise``, ``k4_padded``, ``widens_input``, ``scratch_halfwords``),
where each tensor, depthwise ring and int16 scratch lives in the one static arena
(``plan_int8``, ``scratch_offsets``, ``depthwise_rings``), and which 1x1 convolutions run
inside the depthwise layer after them (``fused_producers``). ``backends.c_int8`` writes the C
from these decisions.
"""

from __future__ import annotations

import numpy as np

from hwprune.backends.c import arena
from hwprune.backends.c_int8_dw import depthwise_plan, rings_of
from hwprune.backends.c_int8_layout import padded_filters
from hwprune.backends.c_int8_rq import ring_words
from hwprune.ir.graph import Graph

# Cortex-M4 cycles of the int8 kernels, read from benchmarks/int8_kernels.py and profiles of
# MLPerf Tiny's models in the emulator; they choose each layer's storage (stored_dense)
DENSE_CYCLES_PER_MAC = 1.45
SPARSE_CYCLES_PER_NONZERO = {"fc": 8.0, "pointwise": 5.0, "conv": 18.0}
SPARSE_BELOW = 0.1

# export.json's key for wide_weights' answer, which the C's regeneration and the report read
WIDE_WEIGHTS_KEY = "int8_wide_weights"


def _weights(graph: Graph) -> int:
    return sum(int(layer.weight.size) for layer in graph.weighted_layers())


def wide_weights(graph: Graph, model: Graph) -> bool:
    """Whether the convolutions' quad records of ``graph`` hold their weights widened to int16
    (``HWP_QUAD_WIDE``: no widening in the multiply loop, about 11 % fewer of its cycles, twice
    the bytes): where every weight of ``graph`` twice over still fits in the int8 weights of
    ``model``, the graph it came from (before dead channels went), so that the firmware's
    weights never outgrow the model's."""
    return 2 * _weights(graph) <= _weights(model)


def writes_output(graph: Graph, layer) -> bool:
    """Whether ``layer`` writes straight into the caller's ``out``: the graph's output, computed
    last and read by no other layer, needs no bytes of the arena nor a final copy."""
    return layer is graph.layers[-1] and layer.name == graph.output and not graph.consumers(layer.name)


def fusible_pairs(graph: Graph) -> dict:
    """The depthwise layers that could run the 1x1 convolution before them (``fused_producers``)."""
    pairs = {}
    for layer in graph.layers:
        if layer.kind != "int8_conv2d" or not layer.depthwise or not stored_dense(layer):
            continue
        source = graph.producer(layer.inputs[0])
        if (source is None or source.kind != "int8_conv2d" or source.depthwise or not pointwise(source)
                or not stored_dense(source) or k4_padded(source) or source.name in graph.outputs
                or [c.name for c in graph.consumers(source.name)] != [layer.name]
                or ring_words(source, graph.input_types(source)[0]) is None):
            continue
        plan = depthwise_plan(layer, graph.input_types(layer)[0], graph.input_shapes(layer)[0],
                              graph.shape_of(layer.name))
        # the written-out loop stores a quad's channels at immediate offsets of up to three
        # channels' words and steps its addresses by four (hwp_conv_pairs' ring form)
        if plan is not None and 4 * 12 * plan.ring_width(plan.out_cols) <= 4095:
            pairs[layer.name] = source
    return pairs


def fused_producers(graph: Graph) -> dict:
    """The 1x1 convolutions that run inside the 3x3 depthwise layer after them
    (``hwp_pwdw3_s8``), by that layer's name: dense, input channels a multiple of four, read
    by that layer alone, their requantization exact in the ring's form (``ring_words``: output
    zero point -128, range all of int8). The depthwise layer computes their output rows
    straight into its ring (every channel, whole rows), so that output takes no bytes of the
    arena and is never widened; the convolution reads its input at the depthwise layer's step.
    Taken in layer order wherever the arena (with its scratch) stays within its size without
    any: a ring of every channel may outweigh the tensor it replaces."""
    fusible = fusible_pairs(graph)
    if not fusible:
        return {}
    limit = arena_bytes(graph, {})
    fused = {}
    for name, source in fusible.items():
        trial = {**fused, name: source}
        if arena_bytes(graph, trial) <= limit:
            fused = trial
    return fused


def _steps(graph: Graph, fused: dict) -> dict[str, int]:
    """The step at which each layer runs: its index, or for a convolution that runs inside the
    depthwise layer after it (``fused``), that layer's."""
    steps = {layer.name: i for i, layer in enumerate(graph.layers)}
    for name, source in fused.items():
        steps[source.name] = steps[name]
    return steps


def _tensor_buffers(graph: Graph, fused: dict) -> list[arena.Buffer]:
    steps = _steps(graph, fused)
    end = len(graph.layers)  # the copy into ``out`` after the last layer
    inside = {source.name for source in fused.values()}
    buffers = []
    for i, layer in enumerate(graph.layers):
        if writes_output(graph, layer) or layer.name in inside:
            continue
        readers = [steps[c.name] for c in graph.consumers(layer.name)]
        last = max([i, *readers, *([end] if layer.name in graph.outputs else [])])
        buffers.append(arena.Buffer(layer.name, int(np.prod(graph.shape_of(layer.name))), i, last))
    return buffers


def layout(graph: Graph, fused: dict) -> tuple[list[arena.Buffer], dict, arena.Arena]:
    """With the convolutions ``fused`` run inside their depthwise layers: the arena's buffers
    (the tensors, then the depthwise rings, each live at its layer's step only), the rings'
    passes (``depthwise_rings``) and the arena's plan."""
    tensors = _tensor_buffers(graph, fused)
    rings = rings_of(graph, tensors, stored_dense, frozenset(fused))
    steps = {layer.name: i for i, layer in enumerate(graph.layers)}
    buffers = tensors + [arena.Buffer(f"{name}#ring", plan.ring_bytes(block, strip), steps[name], steps[name])
                         for name, (plan, block, strip) in rings.items()]
    return buffers, rings, arena.plan(buffers)


def depthwise_rings(graph: Graph) -> dict:
    """Per 3x3 depthwise layer ``hwp_dw3_s8`` (or ``hwp_pwdw3_s8``) runs: (plan, channels per
    pass, outputs per strip)."""
    return layout(graph, fused_producers(graph))[1]


def arena_bytes(graph: Graph, fused: dict) -> int:
    """The arena's bytes on DSP cores with the convolutions ``fused`` run inside their depthwise layers."""
    buffers, _, plan = layout(graph, fused)
    return scratch_for(graph, plan, buffers, fused)[1]


def plan_int8(graph: Graph) -> arena.Arena:
    """Where each layer's output lives in one static int8 arena: step ``i`` writes layer
    ``i``'s tensor, which stays live until its last reader (the graph output until the
    final copy), so two tensors share bytes only when no step needs both. A last layer that
    ``writes_output`` takes no bytes, nor does a convolution that runs inside the depthwise
    layer after it (``fused_producers``); a depthwise layer's ring (``depthwise_rings``) is
    live at its step only."""
    return layout(graph, fused_producers(graph))[2]


def scratch_offsets(graph: Graph, plan: arena.Arena) -> tuple[dict[str, int], int]:
    """Where each dense layer's int16 scratch (``scratch_halfwords``) lives on DSP cores: in the
    arena, first fit among the bytes no tensor or ring holds while that layer runs (its input
    and output are live then), so the scratch costs RAM only where it exceeds the gaps. A
    depthwise layer that runs the convolution before it (``fused_producers``) takes that
    convolution's. Returns (offsets by layer name, the arena's bytes on DSP cores); the plan's
    tensors stay put, so cores without the extension keep the smaller arena."""
    fused = fused_producers(graph)
    return scratch_for(graph, plan, layout(graph, fused)[0], fused)


def scratch_for(graph: Graph, plan: arena.Arena, buffers: list[arena.Buffer], fused: dict
                ) -> tuple[dict[str, int], int]:
    """``scratch_offsets`` for the ``plan`` of ``buffers`` (``layout``) with ``fused``."""
    inside = {source.name for source in fused.values()}
    offsets, nbytes = {}, plan.nbytes
    for i, layer in enumerate(graph.layers):
        user = fused.get(layer.name, layer)
        size = 0
        if user.kind in ("int8_dense", "int8_conv2d") and layer.name not in inside:
            size = arena.aligned(2 * scratch_halfwords(user))
        if not size:
            continue
        busy = sorted((plan.offsets[b.name], plan.offsets[b.name] + arena.aligned(b.nbytes))
                      for b in buffers if b.first <= i <= b.last)
        offset = 0
        for lo, hi in busy:  # sorted by start: the first gap wide enough
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        offsets[layer.name] = offset
        nbytes = max(nbytes, offset + size)
    return offsets, nbytes


def pointwise(layer) -> bool:
    """A FULLY_CONNECTED, or a 1x1 CONV_2D of stride 1 without padding: a matrix product whose
    inputs are never padding (``hwp_pw_sparse_s8`` stores it sparse)."""
    if layer.kind == "int8_dense":
        return True
    return (not layer.depthwise and tuple(layer.weight.shape[1:3]) == (1, 1) and tuple(layer.stride) == (1, 1)
            and not np.any(np.asarray(layer.padding)))


def stored_dense(layer) -> bool:
    """Whether a weighted layer keeps every weight (one byte each, no index): the cheaper of
    the two by the Cortex-M4 cycles per output channel estimated below (both pay the same
    requantization). Dense: about ``DENSE_CYCLES_PER_MAC`` per MAC with SMLAD, plus the
    im2col of a convolution's columns shared by the channels (a word of four inputs at a
    time; inputs whose channels are not a multiple of four pad each filter to a multiple
    of four weights, and pay the padding's MACs: ``k4_padded``).
    Sparse: per nonzero weight ``SPARSE_CYCLES_PER_NONZERO`` of its kernel (the matrix
    product shares each index between two pixels; a convolution checks each tap for padding).
    A layer is stored sparse only where that is also smaller (flash), and always then when at
    most ``SPARSE_BELOW`` of its weights are nonzero (a layer pruned that far is pruned for
    its flash; the estimates put both forms within a few cycles per output there)."""
    k = layer.filter_matrix.shape[1]
    nonzero_per_channel = layer.nonzero_weights / layer.out_channels if layer.kind == "int8_conv2d" else \
        layer.nonzero_weights / layer.out_features
    dense = DENSE_CYCLES_PER_MAC * ((k + 3) // 4 * 4 if k4_padded(layer) else k)
    if layer.kind == "int8_conv2d" and not layer.depthwise:
        dense += 1.5 * k / layer.out_channels  # a word of four inputs at a time (hwp_im2col, hwp_im2col_k4)
    kind = "fc" if layer.kind == "int8_dense" else "pointwise" if pointwise(layer) else "conv"
    # sparse bytes: a value and a 16-bit index (three for a convolution's tap) per nonzero, a channel start each
    sparse_bytes = layer.nonzero_weights * (3 if kind != "conv" else 7) + 4 * (layer.filter_matrix.shape[0] + 1)
    if sparse_bytes >= layer.weight.size:
        return True
    return dense < SPARSE_CYCLES_PER_NONZERO[kind] * nonzero_per_channel and nonzero_per_channel > SPARSE_BELOW * k


def widens_input(layer) -> bool:
    """Whether a dense-stored FULLY_CONNECTED widens its input into int16 scratch once (DSP
    cores), or reads the int8 input as it goes, its zero point folded into the bias (a cycle
    more per 16 MACs, no scratch). A layer that narrows (more inputs than outputs) reads
    directly: its widened input would be the largest buffer while it runs, more than its
    input and output together."""
    return layer.kind != "int8_dense" or layer.filter_matrix.shape[1] <= layer.out_features


def k4_padded(layer) -> bool:
    """Whether a dense CONV_2D (not depthwise) runs ``hwp_conv_k4_s8``: its input channels are
    not a multiple of four, so each filter is padded with zeros to a multiple of four weights."""
    return layer.kind == "int8_conv2d" and not layer.depthwise and layer.weight.shape[-1] % 4 != 0


def scratch_halfwords(layer) -> int:
    """int16 scratch a dense-stored weighted layer needs on a DSP core: FULLY_CONNECTED its
    widened input (none when it reads it directly, ``widens_input``), CONV_2D two widened
    columns (im2col; ``hwp_conv_k4_s8``'s filters padded to words),
    DEPTHWISE_CONV_2D none (a 3x3 one's ring of widened rows is in the arena,
    ``depthwise_rings``)."""
    if not stored_dense(layer) or (layer.kind == "int8_conv2d" and layer.depthwise) or not widens_input(layer):
        return 0
    if k4_padded(layer):  # two columns of the padded filters' length
        return 2 * padded_filters(layer.filter_matrix).shape[1]
    return int(layer.filter_matrix.shape[1]) * (2 if layer.kind == "int8_conv2d" else 1)
