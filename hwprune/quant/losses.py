"""What a type the user gave loses on the calibration data: values beyond its range (they
saturate or wrap) and nonzero weights or biases that round to zero. Calibrated types are
chosen to cover the data, so only the types from ``--precision`` or ``--config`` are
checked; each loss is one line naming the layer, the type and the bits missing."""

from __future__ import annotations

import math

import numpy as np

from hwprune.ir.graph import Graph
from hwprune.quant.calibrate import float_forward
from hwprune.ir.fixed import Fixed, Overflow, int_bits_for, quantize
from hwprune.quant.precision import PrecisionSpec, input_name

MAX_PARTIAL_SUM_ROWS = 256  # partial sums of a Dense layer are (rows, out, in): bound the work


def _bits(n: int) -> str:
    return f"{n} bit" + ("" if n == 1 else "s")


def _range_loss(what: str, values: np.ndarray, t: Fixed) -> list[str]:
    values = np.asarray(values, dtype=np.float64)
    out = (values > t.max_value) | (values < t.min_value)
    if not out.any():
        return []
    worst = float(np.abs(values).max())
    need = int_bits_for(worst, t.signed or bool((values < 0).any()))
    verb = "saturate" if t.overflow is Overflow.SAT else "wrap around"
    return [f"{what}: {int(out.sum()):,} of {values.size:,} calibration values {verb} in {t} (largest |value| "
            f"{worst:.4g} needs {need} integer bits, the type has {t.int_bits}: {_bits(need - t.int_bits)} lost)"]


def _zero_loss(what: str, values: np.ndarray, t: Fixed) -> list[str]:
    values = np.asarray(values, dtype=np.float64)
    nonzero = values != 0
    zeroed = nonzero & (quantize(values, t) == 0)
    if not zeroed.any():
        return []
    smallest = float(np.abs(values[zeroed]).min())
    need = -math.floor(math.log2(smallest))  # fraction bits whose LSB is at most |value|
    return [f"{what}: {int(zeroed.sum()):,} of {int(nonzero.sum()):,} nonzero values round to zero in {t} "
            f"(the smallest, {smallest:.3g}, needs {need} fraction bits, the type has {t.frac_bits}: "
            f"{_bits(need - t.frac_bits)} lost)"]


def _partial_sums(layer, x: np.ndarray) -> np.ndarray:
    """Every running sum of a Dense layer as hls4ml's Latency kernel forms it: the bias,
    then each product added in input order."""
    x = x[:MAX_PARTIAL_SUM_ROWS]
    products = x[:, None, :] * layer.weight[None, :, :]
    return np.concatenate([np.broadcast_to(layer.bias, (len(x), len(layer.bias)))[..., None],
                           layer.bias[None, :, None] + np.cumsum(products, axis=2)], axis=2)


def losses(float_graph: Graph, x, spec: PrecisionSpec) -> list[str]:
    """One line per loss of a type ``spec`` gives, measured with the float model on ``x``
    (calibration inputs, the source model's layout)."""
    if not spec.model and not spec.layers:
        return []
    lines = []
    x = np.asarray(x, dtype=np.float64)
    inp = float_graph.from_source(x)
    in_t = spec.type_for(input_name(float_graph), "result")
    if in_t is not None:
        lines += _range_loss("input", inp, in_t)
    trace = float_forward(float_graph, x, trace=True)
    previous = inp
    for layer, (_, out) in zip(float_graph.layers, trace):
        given = spec.given(layer.name)
        name = f"layer {layer.name!r}"
        if hasattr(layer, "weight"):
            for key in ("weight", "bias"):
                t = given[key]
                if t is not None:
                    values = getattr(layer, key)
                    lines += _range_loss(f"{name} {key}s", values, t) + _zero_loss(f"{name} {key}s", values, t)
            if given["accum"] is not None:
                sums = _partial_sums(layer, previous) if layer.kind == "dense" else out
                lines += _range_loss(f"{name} accumulator", sums, given["accum"])
        if "result_t" in layer.types() and given["result"] is not None:
            lines += _range_loss(f"{name} result", out, given["result"])
        previous = out
    return lines
