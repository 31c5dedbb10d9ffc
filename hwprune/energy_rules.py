"""What one layer does per inference, counted by a rule per layer kind (a new layer kind adds
a rule); ``energy`` prices the counts (its docstring says what is counted and how)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwprune.errors import HwpruneError
from hwprune.ir.graph import Graph


@dataclass(frozen=True)
class LayerWork:
    """Counts of one layer per inference, before they are priced."""

    name: str
    kind: str
    mults: int = 0
    mult_bits: tuple[int, int] = (0, 0)  # (weight, input); (32, 32) float
    adds: int = 0
    add_bits: int = 0
    weight_bytes: int = 0  # bytes of weights read: values + indices + pointers + bias, per use
    stored_bytes: int = 0  # the same, as stored (what must fit the weight memory)
    activation_bytes_read: int = 0
    activation_bytes_written: int = 0
    live_activation_bytes: int = 0  # input + output, which must fit the activation memory


# -- counting, per layer kind (a new layer kind adds a rule) ------------------------------------


@dataclass(frozen=True)
class Context:
    """What a rule needs besides the layer: shapes, element sizes, widths, storage."""

    shape_in: tuple[int, ...]
    shape_out: tuple[int, ...]
    in_bytes: int  # bytes per input element
    out_bytes: int
    in_bits: int  # width of the input values (32 for float)
    stored_bytes: int = 0  # weighted layers: values + indices + pointers + bias, as stored
    format: str = "dense"  # weighted layers: a dense-format kernel multiplies zeros too
    weight_bits: int = 0
    accum_bits: int = 0
    #: every tensor the layer reads, in operand order: (elements, bytes per element, bits)
    operands: tuple[tuple[int, int, int], ...] = ()

    @property
    def n_in(self) -> int:
        return int(np.prod(self.shape_in))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.shape_out))

    def traffic(self, reads: int) -> dict:
        return dict(activation_bytes_read=reads * self.in_bytes, activation_bytes_written=self.n_out * self.out_bytes,
                    live_activation_bytes=self.n_in * self.in_bytes + self.n_out * self.out_bytes)


Rule = Callable[[object, Context], LayerWork]
RULES: dict[str, Rule] = {}


def rule(*kinds: str):
    def register(fn: Rule) -> Rule:
        for kind in kinds:
            RULES[kind] = fn
        return fn

    return register


@rule("dense", "conv1d", "conv2d")
def _weighted(layer, c: Context) -> LayerWork:
    """One product (a weight read and an input read) per multiply-accumulate the kernel runs.
    A convolution reads its stored weights once per output position, a Dense layer once."""
    products = layer.mac_count(c.shape_in, nonzero_only=c.format != "dense")
    used = layer.weight.size if c.format == "dense" else max(layer.nonzero_weights, 1)
    reuse = max(products / used, 1.0)
    return LayerWork(layer.name, layer.kind, products, (c.weight_bits, c.in_bits), products, c.accum_bits,
                     round(c.stored_bytes * reuse), c.stored_bytes, **c.traffic(products))


@rule("relu", "sign")
def _relu(layer, c: Context) -> LayerWork:
    return LayerWork(layer.name, layer.kind, adds=c.n_in, add_bits=c.in_bits, **c.traffic(c.n_in))


@rule("upsample")
def _upsample(layer, c: Context) -> LayerWork:
    """A copy: every output reads one input value, and nothing is computed."""
    return LayerWork(layer.name, layer.kind, **c.traffic(c.n_out))


@rule("leaky_relu", "hard_sigmoid")
def _scaled_activation(layer, c: Context) -> LayerWork:
    """A product by the slope per element (LeakyReLU: counted on every element, as hardware
    that does not branch computes it), a comparison, and HardSigmoid's shift."""
    const_t = layer.param_t if layer.kind == "leaky_relu" else layer.slope_t
    adds = c.n_in * (2 if layer.kind == "hard_sigmoid" else 1)
    return LayerWork(layer.name, layer.kind, mults=c.n_in, mult_bits=(const_t.width if const_t else 32, c.in_bits),
                     adds=adds, add_bits=c.in_bits, **c.traffic(c.n_in))


@rule("batchnorm")
def _batchnorm(layer, c: Context) -> LayerWork:
    """A product by the channel's scale and an addition of its bias per element; the scales
    and biases are stored."""
    scale_bits = layer.scale_t.width if layer.scale_t else 32
    stored = layer.channels * ((layer.scale_t.storage_bits if layer.scale_t else 32)
                               + (layer.bias_t.storage_bits if layer.bias_t else 32)) // 8
    return LayerWork(layer.name, layer.kind, mults=c.n_in, mult_bits=(scale_bits, c.in_bits), adds=c.n_in,
                     add_bits=c.in_bits, weight_bytes=stored, stored_bytes=stored, **c.traffic(c.n_in))


@rule("sigmoid", "tanh", "selu")
def _table_activation(layer, c: Context) -> LayerWork:
    """An index (one addition) and one table entry read per element; the table is stored."""
    entry = layer.table_t.storage_bits // 8 if layer.table_t else 4
    return LayerWork(layer.name, layer.kind, adds=c.n_in, add_bits=c.in_bits, weight_bytes=c.n_in * entry,
                     stored_bytes=layer.table_size * entry, **c.traffic(c.n_in))


@rule("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d")
def _pool(layer, c: Context) -> LayerWork:
    """Every output reads its window (a comparison or an addition per element)."""
    reads = c.n_out * int(np.prod(layer.pool_size))
    bits = c.accum_bits if layer.op == "avg" and c.accum_bits else c.in_bits
    return LayerWork(layer.name, layer.kind, adds=reads, add_bits=bits, **c.traffic(reads))


@rule("globalavgpool1d", "globalavgpool2d")
def _global_pool(layer, c: Context) -> LayerWork:
    return LayerWork(layer.name, layer.kind, adds=c.n_in, add_bits=c.accum_bits or c.in_bits, **c.traffic(c.n_in))


@rule("quantize")
def _quantize(layer, c: Context) -> LayerWork:
    """Per element a rounding addition and a range check (its type's parameters are read)."""
    return LayerWork(layer.name, layer.kind, adds=2 * c.n_in, add_bits=c.in_bits, **c.traffic(c.n_in))


@rule("clip")
def _clip(layer, c: Context) -> LayerWork:
    return LayerWork(layer.name, layer.kind, adds=2 * c.n_in, add_bits=c.in_bits, **c.traffic(c.n_in))


def _merge_traffic(c: Context) -> dict:
    """Every operand read once (a shorter, broadcast operand is read once per use)."""
    read = sum(c.n_out * nbytes for _, nbytes, _ in c.operands)
    return dict(activation_bytes_read=read, activation_bytes_written=c.n_out * c.out_bytes,
                live_activation_bytes=sum(n * nbytes for n, nbytes, _ in c.operands) + c.n_out * c.out_bytes)


@rule("add")
def _add(layer, c: Context) -> LayerWork:
    bits = max(b for _, _, b in c.operands) + 1
    return LayerWork(layer.name, layer.kind, adds=c.n_out, add_bits=bits, **_merge_traffic(c))


@rule("multiply")
def _multiply(layer, c: Context) -> LayerWork:
    a, b = (bits for _, _, bits in c.operands)
    return LayerWork(layer.name, layer.kind, mults=c.n_out, mult_bits=(a, b), **_merge_traffic(c))


@rule("concatenate")
def _concatenate(layer, c: Context) -> LayerWork:
    # a copy of every element into the joined tensor (C), or wiring (FPGA): the copy's traffic counts
    read = sum(n * nbytes for n, nbytes, _ in c.operands)
    return LayerWork(layer.name, layer.kind, activation_bytes_read=read, activation_bytes_written=c.n_out * c.out_bytes,
                     live_activation_bytes=read + c.n_out * c.out_bytes)


@rule("flatten", "reshape", "identity")
def _flatten(layer, c: Context) -> LayerWork:
    return LayerWork(layer.name, layer.kind)  # a view: no data moves


def _works(graph: Graph, context_of) -> list[LayerWork]:
    works = []
    for index, layer in enumerate(graph.layers):
        if layer.kind == "softmax":
            continue  # not computed: the outputs are logits
        if layer.kind not in RULES:
            raise HwpruneError(f"layer {layer.name!r}: the energy proxy has no rule for {layer.kind!r} layers")
        works.append(RULES[layer.kind](layer, context_of(index, layer)))
    return works
