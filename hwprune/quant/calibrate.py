"""Post-training quantization: choose every layer's fixed-point types from data ranges.

The rules, per weighted layer (Dense, Conv1D, Conv2D; ``x`` its input type, ``w`` its
weights; a conv's accumulator bound is over one filter):

- ``weight_t``: ``weight_bits`` wide, integer bits from the largest ``|w|``; RND, SAT.
- ``bias_t``: the product's fraction bits (``frac(x) + frac(w)``), as int32 biases in
  TFLite, so the bias enters the accumulator without rounding; integer bits from ``|b|``.
- ``accum_t``: the product's fraction bits and enough integer bits for the worst case
  over the whole input range, so it never overflows and only the final cast rounds.
- ``result_t``: ``activation_bits`` wide, integer bits from the calibration data; RND,
  SAT. When a ReLU follows, the ReLU output is unsigned ``activation_bits`` and the Dense
  result gets one more (sign) bit with the same fraction, so the ReLU is a plain clamp.

Add, Multiply, Concatenate and Clip: ``result_t`` from the calibration data as a
ReLU's (unsigned when never negative), or as a weighted layer's when a ReLU follows;
their operands keep the types their producers have (Add aligns them exactly).

LeakyReLU, HardSigmoid, Sigmoid, Tanh, BatchNorm: ``quant/calibrate_activations.py``.

Pooling: MaxPool keeps its input type (``accum_t = result_t = x``: max is exact).
AvgPool and GlobalAvgPool accumulate in a signed type with ``ceil(log2(count))`` more
integer bits (the sum never overflows) and as many more fraction bits (the truncating
division keeps that much precision), and round the average back to the input's width and
range (``result_t``: the input's integer bits, the config's rounding and overflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwprune.errors import DataError, OptionError, ShapeError
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Add, Clip, Concatenate, Dense, Layer, Multiply, ReLU, UpSample, WeightedLayer
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, Rounding, int_bits_for, quantize, to_real
from hwprune.quant.calibrate_activations import ACTIVATIONS, float_activation, quantize_activation
from hwprune.quant.precision import PrecisionSpec, input_name
from hwprune.windows import float_spatial


@dataclass(frozen=True)
class QuantConfig:
    weight_bits: int = 8
    activation_bits: int = 8
    rounding: Rounding = Rounding.RND
    overflow: Overflow = Overflow.SAT

    def __post_init__(self) -> None:
        for key in ("weight_bits", "activation_bits"):
            bits = getattr(self, key)
            if not isinstance(bits, int) or not 2 <= bits <= 16:
                raise OptionError(f"{key.replace('_', '-')} must be an integer from 2 to 16, got {bits!r}")


def _broadcast_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rank = max(a.ndim, b.ndim)
    grow = lambda v: v.reshape(v.shape[0], *([1] * (rank - v.ndim)), *v.shape[1:])  # noqa: E731
    return grow(a), grow(b)


def float_layer(layer: Layer, xs: list[np.ndarray]) -> np.ndarray:
    x = xs[0]
    if isinstance(layer, Dense):
        return x @ layer.weight.T + layer.bias
    if layer.spatial:
        return float_spatial(layer, x)
    if isinstance(layer, ReLU):
        return np.maximum(x, 0.0)
    if isinstance(layer, Clip):
        return np.clip(x, layer.min_value, layer.max_value)
    if isinstance(layer, UpSample):
        return layer.repeat(x)
    if isinstance(layer, ACTIVATIONS):
        return float_activation(layer, x)
    if isinstance(layer, (Add, Multiply)):
        a, b = _broadcast_pair(*xs)
        return a + b if isinstance(layer, Add) else a * b
    if isinstance(layer, Concatenate):
        return np.concatenate(xs, axis=layer.resolved_axis(x.ndim - 1) + 1)
    if layer.passthrough:  # Flatten, Reshape, Identity, the Softmax marker
        return x.reshape(x.shape[0], *layer.output_shape(x.shape[1:]))
    raise ShapeError(f"layer {layer.name!r}: float simulation has no rule for {layer.kind!r}")


def float_forward(graph: Graph, x, trace: bool = False):
    """The float (float64) network, layer by layer in topological order; ignores any
    fixed-point types. ``x`` is in the source model's layout (``Graph.from_source``)."""
    values = {graph.input.name: graph.from_source(np.asarray(x, dtype=np.float64))}
    outputs = []
    for layer in graph.layers:
        values[layer.name] = float_layer(layer, [values[s] for s in layer.inputs])
        outputs.append((layer.name, values[layer.name]))
    return outputs if trace else values[graph.output]


def _value_type(max_abs: float, bits: int, signed: bool, config: QuantConfig) -> Fixed:
    return Fixed(bits, int_bits_for(max_abs, signed), signed, config.rounding, config.overflow)


def input_type(x: np.ndarray, bits: int, config: QuantConfig = QuantConfig()) -> Fixed:
    """The type a model's input is calibrated to: ``bits`` wide, the integer bits that hold
    the largest magnitude of the inputs ``x``, signed when one is negative."""
    return _value_type(float(np.abs(x).max()), bits, bool(x.min() < 0), config)


def _check_calibration(graph: Graph, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"calibration data must be numeric, got dtype {x.dtype}")
    x = graph.from_source(x.astype(np.float64), "calibration inputs")
    if not np.all(np.isfinite(x)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise DataError(f"calibration data has a non-finite value at index {idx}")
    return x


def calibrate(graph: Graph, x, config: QuantConfig = QuantConfig(), spec: Optional[PrecisionSpec] = None) -> Graph:
    """A quantized copy of a float graph, its types chosen from the ranges seen on ``x``
    (in the source model's layout). ``spec``: types the user gave (``--precision``,
    ``--config``); only what it leaves open is calibrated."""
    spec = spec or PrecisionSpec()
    spec.check_layers(graph)
    x = _check_calibration(graph, x)
    outputs = dict(float_forward(graph, graph.to_source(x), trace=True))
    act = config.activation_bits
    input_t = spec.type_for(input_name(graph), "result") or input_type(x, act, config)

    layers: list[Layer] = []
    types = {graph.input.name: input_t}
    for layer in graph.layers:
        out = outputs[layer.name]
        in_t = types[layer.inputs[0]]
        given = spec.given(layer.name)
        # A ReLU that reads nothing else lets its producer keep a sign bit more (a plain clamp).
        relu_follows = bool(graph.consumers(layer.name)) and all(
            isinstance(c, ReLU) for c in graph.consumers(layer.name)) and layer.name not in graph.outputs
        if layer.weighted:
            layer = _quantize_dense(layer, in_t, out, relu_follows, config, given)
        elif layer.spatial:
            layer = _quantize_pool(layer, in_t, graph.input_shape_of_layer(layer), config)
            layer = layer.with_(**{f"{k}_t": t for k, t in given.items() if t is not None and f"{k}_t" in layer.types()})
        elif isinstance(layer, ReLU):
            layer = layer.with_(result_t=given["result"] or _value_type(float(out.max(initial=0.0)), act, False, config))
        elif isinstance(layer, ACTIVATIONS):  # LeakyReLU, HardSigmoid, Sigmoid, Tanh, BatchNorm
            layer = quantize_activation(layer, out, config, given,
                                        lambda o, r=relu_follows: _result_type(o, r, config), in_t)
        elif layer.computes:  # Clip, Add, Multiply, Concatenate: the output's range
            layer = layer.with_(result_t=given["result"] or _result_type(out, relu_follows, config))
        types[layer.name] = layer.result_t if layer.computes else in_t
        layers.append(layer)
    return graph.with_layers(layers, input_t=input_t)


def _result_type(out: np.ndarray, relu_follows: bool, config: QuantConfig) -> Fixed:
    """``activation_bits`` wide with the integer bits the data needs, unsigned when it is
    never negative; before a ReLU, one more (sign) bit with the same fraction as Dense."""
    act = config.activation_bits
    if relu_follows:
        relu_int = int_bits_for(float(out.max(initial=0.0)), False)
        return Fixed(act + 1, relu_int + 1, True, config.rounding, config.overflow)
    if out.size and out.min() >= 0:
        return _value_type(float(out.max(initial=0.0)), act, False, config)
    return _value_type(float(np.abs(out).max(initial=0.0)), act, True, config)


def accumulator_type(weight_q: np.ndarray, bias_q: np.ndarray, in_t: Fixed, weight_t: Fixed, bias_t: Fixed,
                     where: str = "", max_width: int = MAX_WIDTH) -> Fixed:
    """The accumulator of a Dense layer: the product's fraction bits and room for the worst
    case over the whole input range, so that it never overflows (TRN, WRAP)."""
    acc_frac = in_t.frac_bits + weight_t.frac_bits
    x_abs = max(-in_t.min_int, in_t.max_int)
    worst = max(
        (abs(int(b)) * (1 << max(acc_frac - bias_t.frac_bits, 0)) + x_abs * int(s)
         for b, s in zip(bias_q, np.abs(weight_q).sum(axis=1))),
        default=0,
    )
    width = max(int(worst).bit_length() + 1, 2)
    if width > max_width:
        raise OptionError(f"{'layer ' + repr(where) + ': ' if where else ''}the accumulator would need {width} bits "
                          f"(at most {max_width}); use fewer weight or activation bits")
    return Fixed(width, width - acc_frac, True, Rounding.TRN, Overflow.WRAP)


def _quantize_pool(layer: Layer, in_t: Fixed, input_shape: tuple, config: QuantConfig) -> Layer:
    if layer.op == "max":
        return layer.with_(accum_t=in_t, result_t=in_t)
    count = int(np.prod(input_shape[:-1])) if not hasattr(layer, "pool_size") else int(np.prod(layer.pool_size))
    extra = max(count - 1, 0).bit_length()  # ceil(log2(count))
    width = in_t.width + 2 * extra + (0 if in_t.signed else 1)
    if width > MAX_WIDTH:
        raise OptionError(f"layer {layer.name!r}: the average's accumulator would need {width} bits (at most "
                          f"{MAX_WIDTH}); use fewer activation bits")
    accum_t = Fixed(width, in_t.int_bits + extra + (0 if in_t.signed else 1), True, Rounding.TRN, Overflow.WRAP)
    result_t = Fixed(in_t.width, in_t.int_bits, in_t.signed, config.rounding, config.overflow)
    return layer.with_(accum_t=accum_t, result_t=result_t)


def _quantize_dense(layer: WeightedLayer, in_t: Fixed, out: np.ndarray, relu_follows: bool,
                    config: QuantConfig, given: Optional[dict] = None) -> WeightedLayer:
    """``given``: the types the user set (None: calibrate that one)."""
    given = given or {}
    weight_t = given.get("weight") or Fixed(
        config.weight_bits, int_bits_for(float(np.abs(layer.weight).max(initial=0.0)), True), True,
        Rounding.RND, Overflow.SAT)
    w_q = quantize(layer.weight, weight_t)
    # Pruned weights stay exactly zero, and a weight that rounds to zero adds nothing.
    product_frac = in_t.frac_bits + weight_t.frac_bits
    bias_int_bits = int_bits_for(float(np.abs(layer.bias).max(initial=0.0)), True)
    bias_t = given.get("bias") or Fixed(min(max(bias_int_bits + product_frac, 2), 32), bias_int_bits, True,
                                        Rounding.RND, Overflow.SAT)
    b_q = quantize(layer.bias, bias_t)

    accum_t = given.get("accum") or accumulator_type(w_q.reshape(w_q.shape[0], -1), b_q, in_t, weight_t, bias_t,
                                                     layer.name)

    act = config.activation_bits
    if given.get("result"):
        result_t = given["result"]
    elif relu_follows:
        relu_int = int_bits_for(float(out.max(initial=0.0)), False)
        result_t = Fixed(act + 1, relu_int + 1, True, config.rounding, config.overflow)
    else:
        result_t = _value_type(float(np.abs(out).max(initial=0.0)), act, True, config)
    return layer.with_(
        weight=to_real(w_q, weight_t), bias=to_real(b_q, bias_t),
        weight_t=weight_t, bias_t=bias_t, accum_t=accum_t, result_t=result_t,
    )
