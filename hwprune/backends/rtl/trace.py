"""The whole quantized graph as one da4ml adder graph, and its ports as integers.

Every layer is traced in order on da4ml's symbolic fixed-point variables: Dense and ReLU
with the tracers of ``hwprune.fpga.da`` (the constant products solved as shared shift-adds,
the accumulator's wrap, the result cast with its rounding and saturation), so the traced
logic computes exactly what the integer reference computes. Flatten is wiring and a final
Softmax is the reference's end marker (the outputs are logits). A layer kind with no tracer
is an ``UnsupportedLayerError`` naming it (exit 2), before anything is written.

The module's ports pack every input and output at the width da4ml needs for its range
(``Port``); an input the network never reads has width 0. ``pack``/``unpack`` convert
between those words and the integers of the graph's input and output types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwprune.errors import UnsupportedLayerError
from hwprune.fpga import da
from hwprune.ir.graph import Graph
from hwprune.ir.fixed import Fixed

# Layers that compute nothing in hardware: flatten is a reshape of wires; softmax is the
# reference's end marker (it passes the logits through).
WIRING = ("flatten", "softmax")


@dataclass(frozen=True)
class Port:
    """One scalar of a module port: its bit width, fraction bits and sign, as da4ml packs it."""

    width: int
    frac_bits: int
    signed: bool

    def to_json(self) -> list:
        return [self.width, self.frac_bits, self.signed]

    @classmethod
    def from_json(cls, row) -> "Port":
        width, frac, signed = row
        return cls(int(width), int(frac), bool(signed))


def unsupported_layers(graph: Graph) -> list:
    """Layers with no tracer, and layers that round half to even (da4ml has TRN and RND only)."""
    return [layer for layer in graph.layers if (layer.kind not in da.TRACERS and layer.kind not in WIRING)
            or not da.traceable_types(layer)]


def check_supported(graph: Graph) -> None:
    """UnsupportedLayerError naming the first layer the RTL backend cannot map; ModelError
    for a graph that is not a chain."""
    graph.require_chain("--backend rtl")
    bad = unsupported_layers(graph)
    if bad:
        layer = bad[0]
        if layer.kind in da.TRACERS or layer.kind in WIRING:
            raise UnsupportedLayerError(
                f"--backend rtl cannot map layer {layer.name!r} ({layer.kind}): it rounds half to even (RND_CONV, "
                f"as QKeras and QONNX declare), and da4ml rounds TRN or RND only; {len(bad)} layer(s) of "
                f"{graph.name!r} have no mapping")
        raise UnsupportedLayerError(
            f"--backend rtl cannot map layer {layer.name!r} ({layer.kind}): the RTL backend traces "
            f"{', '.join(sorted(da.TRACERS))} with da4ml ({', '.join(WIRING)} are wiring); "
            f"{len(bad)} layer(s) of {graph.name!r} have no mapping")
    for i, layer in enumerate(graph.layers):
        if layer.kind == "softmax" and i != len(graph.layers) - 1:
            raise UnsupportedLayerError(f"--backend rtl: layer {layer.name!r} (softmax) is not the last layer; "
                                        "only a final softmax (the logits' end marker) is supported")


def trace_graph(graph: Graph):
    """The graph as one da4ml ``CombLogic`` over its flattened input."""
    check_supported(graph)
    da.require_da4ml()
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    n = int(np.prod(graph.input_shape))
    inp = FixedVariableArrayInput((n,), solver_options=dict(da.SOLVER_OPTIONS))
    # The inputs are integers of input_t already: declare their grid and range only.
    x = da._quantize(inp, graph.input_t.with_(overflow="WRAP", rounding="TRN"))
    for layer in graph.layers:
        if layer.kind in da.TRACERS:
            (in_t,) = graph.input_types(layer)
            if layer.kind == "dense":
                da.check_exact_sum(layer, in_t)
            x = da.TRACERS[layer.kind](layer, in_t, x)
    return comb_trace(inp, x)


def ports(logic) -> tuple[list[Port], list[Port]]:
    from da4ml.cmvm.types import _minimal_kif

    def port(qint) -> Port:
        keep_negative, integer, frac = (int(v) for v in _minimal_kif(qint))
        return Port(keep_negative + integer + frac, frac, bool(keep_negative))

    return [port(q) for q in logic.inp_qint], [port(q) for q in logic.out_qint]


def pack(x_int: np.ndarray, in_ports: list[Port], in_t: Fixed) -> list[int]:
    """Each row of integer inputs (on ``in_t``'s grid) as the bits of ``model_inp``."""
    words = []
    for row in np.asarray(x_int).reshape(len(x_int), -1):
        word, pos = 0, 0
        for value, p in zip(row, in_ports):
            if p.width:
                shift = p.frac_bits - in_t.frac_bits
                raw = int(value) << shift if shift >= 0 else int(value) >> -shift
                word |= (raw & ((1 << p.width) - 1)) << pos
            pos += p.width
        words.append(word)
    return words


def unpack(words: list[int], out_ports: list[Port], out_t: Fixed) -> np.ndarray:
    """The ``model_out`` bits of each vector as integers on ``out_t``'s grid."""
    rows = []
    for word in words:
        row, pos = [], 0
        for p in out_ports:
            raw = (word >> pos) & ((1 << p.width) - 1) if p.width else 0
            if p.signed and p.width and raw >> (p.width - 1):
                raw -= 1 << p.width
            shift = out_t.frac_bits - p.frac_bits
            row.append(raw << shift if shift >= 0 else raw >> -shift)
            pos += p.width
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(len(words), len(out_ports))
