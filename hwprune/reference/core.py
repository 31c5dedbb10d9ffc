"""The registry of kernels, the graph walk and the Dense, ReLU, Flatten and Softmax kernels
(the package docstring says what the reference is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwprune.errors import ModelError
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, Layer, ReLU, WeightedLayer
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, apply_overflow, cast, from_grid, quantize, to_real

Kernel = Callable[[Layer, np.ndarray, Fixed], np.ndarray]
KERNELS: dict[str, Kernel] = {}


def kernel(kind: str):
    def register(fn: Kernel) -> Kernel:
        KERNELS[kind] = fn
        return fn

    return register


def _bits(max_abs: int) -> int:
    return int(max_abs).bit_length()


def dense_integers(layer: WeightedLayer) -> tuple[np.ndarray, np.ndarray]:
    """A quantized weighted layer's filter matrix ``(outputs, weights per output)`` as
    integers and its bias cast to the accumulator type (the value every output starts from)."""
    if not layer.is_quantized():
        raise ModelError(f"layer {layer.name!r} is not quantized")
    w = from_grid(layer.filter_matrix, layer.weight_t, f"layer {layer.name!r} weight")
    b = from_grid(layer.bias, layer.bias_t, f"layer {layer.name!r} bias")
    return w, cast(b, layer.bias_t.frac_bits, layer.accum_t)


@dataclass(frozen=True)
class DenseSum:
    """How a Dense layer may sum its products; the C backend follows the same rule.

    ``fast``: every product lands in the accumulator exactly (``shift >= 0``) and the
    accumulator either never overflows or wraps (modular addition commutes with one final
    wrap), so the raw products may be summed in any order and scaled once. ``bound`` is
    the largest partial sum any input in range can produce, on the accumulator's grid.
    """

    fast: bool
    shift: int  # accumulator frac - product frac
    bound: int
    never_overflows: bool


def dense_sum(layer: WeightedLayer, in_t: Fixed, w: np.ndarray, acc0: np.ndarray) -> DenseSum:
    acc_t = layer.accum_t
    shift = acc_t.frac_bits - (in_t.frac_bits + layer.weight_t.frac_bits)
    if shift < 0:
        return DenseSum(False, shift, 0, False)
    x_abs = max(-in_t.min_int, in_t.max_int)
    # Python integers: the bound itself must not overflow while it is computed.
    bound = max((abs(int(a)) + ((x_abs * int(s)) << shift) for a, s in zip(acc0, np.abs(w).sum(axis=1))), default=0)
    never_overflows = bound <= acc_t.max_int and -bound >= acc_t.min_int
    fast = _bits(bound) < 63 and (never_overflows or acc_t.overflow is Overflow.WRAP)
    return DenseSum(fast, shift, bound, never_overflows)


@kernel("dense")
def dense(layer: Dense, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    w, acc0 = dense_integers(layer)
    acc_t = layer.accum_t
    plan = dense_sum(layer, in_t, w, acc0)
    if plan.fast:
        acc = acc0[None, :] + ((x @ w.T) << np.int64(plan.shift))
        return cast(apply_overflow(acc, acc_t), acc_t.frac_bits, layer.result_t)
    # General case, as hls4ml computes it: cast every product to accum_t, then add the
    # products to the accumulator in input order, applying accum_t's overflow each time.
    product_frac = in_t.frac_bits + layer.weight_t.frac_bits
    acc = np.broadcast_to(acc0, (x.shape[0], acc0.shape[0])).copy()
    for i in range(x.shape[1]):
        product = cast(x[:, i : i + 1] * w[None, :, i], product_frac, acc_t)
        acc = apply_overflow(acc + product, acc_t)
    return cast(acc, acc_t.frac_bits, layer.result_t)


@kernel("relu")
def relu(layer: ReLU, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    return cast(np.maximum(x, 0), in_t.frac_bits, layer.result_t)


@kernel("flatten")
def flatten(layer: Layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


@kernel("softmax")
def softmax_marker(layer: Layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    return x


def _check_quantized(graph: Graph) -> None:
    if not graph.is_quantized:
        raise ModelError(f"model {graph.name!r} is not quantized; the reference runs fixed-point graphs only")
    for layer in graph.layers:
        if layer.kind not in KERNELS:
            raise ModelError(f"layer {layer.name!r}: the integer reference has no kernel for {layer.kind!r}")
        for key, t in layer.types().items():
            if t.width > MAX_WIDTH:
                raise ModelError(f"layer {layer.name!r}: {key} {t} is wider than {MAX_WIDTH} bits")


def quantize_input(graph: Graph, x, what: str = "inputs") -> np.ndarray:
    """Float inputs in the source model's layout (``Graph.from_source``) to integers of
    the graph's input type, ``(N, *input_shape)`` (channels-last, as ``run`` takes them).
    ``what`` names the inputs in errors (the file they came from)."""
    _check_quantized(graph)
    x = graph.from_source(np.asarray(x, dtype=np.float64), what, single_ok=True)
    return quantize(x, graph.input_t)


def run_layer(graph: Graph, layer: Layer, values: dict[str, np.ndarray]) -> np.ndarray:
    """``layer``'s output from ``values`` (tensor name -> integers, batch first)."""
    operands = [values[source] for source in layer.inputs]
    types = list(graph.input_types(layer))
    if layer.arity == 1:
        return KERNELS[layer.kind](layer, operands[0], types[0])
    return KERNELS[layer.kind](layer, operands, types)


def run(graph: Graph, x_int, trace: bool = False):
    """Integer inputs to integer outputs; with ``trace``, a list of (layer, output) pairs."""
    _check_quantized(graph)
    x = graph.check_batch(x_int, "integer inputs", single_ok=True)
    if x.dtype.kind not in "iu":
        raise ModelError(f"integer reference: inputs must be integers, got dtype {x.dtype}")
    values = {graph.input.name: x.astype(np.int64).reshape(x.shape[0], *graph.input_shape)}
    # Without a trace a tensor is dropped after its last reader, as the C arena reuses it.
    last_read = {source: layer.name for layer in graph.layers for source in layer.inputs}
    steps = []
    for layer in graph.layers:
        values[layer.name] = run_layer(graph, layer, values)
        steps.append((layer.name, values[layer.name]))
        if not trace:
            steps.clear()
            for source in dict.fromkeys(layer.inputs):
                if last_read[source] == layer.name and source not in graph.outputs:
                    del values[source]
    return steps if trace else values[graph.output]


def predict(graph: Graph, x) -> np.ndarray:
    """Float inputs to the real values of the integer outputs (float64)."""
    return to_real(run(graph, quantize_input(graph, x)), graph.output_t)
