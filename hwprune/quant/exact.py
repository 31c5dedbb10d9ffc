"""Types that compute a model's declared arithmetic exactly: the quantized models' own types.

A quantization-aware model (QKeras, QONNX) declares the types of its weights, biases and
quantized activations; between those points it computes in float, which on values of a
fixed-point grid is exact (the sums stay far below float64's 53 bits). ``complete_types``
gives every tensor the model leaves undeclared a type that holds it exactly:

- a weighted layer: its declared ``weight_t``/``bias_t`` (the weights must lie on their
  grids; with ``exact_weights``, undeclared ones get the narrowest type that holds the
  values exactly, as a QONNX model's weights after their Quant nodes), an accumulator
  with the product's fraction bits and room for the worst case
  (``calibrate.accumulator_type``), and ``result_t`` equal to it (no rounding);
- ReLU without a declared type: the input's type without its sign bit (exact);
- a float BatchNorm (QKeras computes it in float): scale and bias in the narrowest types
  that hold them, the result exact (``x * scale + bias`` with all its bits);
- a LeakyReLU: its slope in the narrowest type that holds it, the result exact (``x`` and
  ``alpha * x`` with all their bits);
- Clip, MaxPool, UpSample: the input's type; Add: the finer fraction and one integer bit more;
  Concatenate: the finer fraction and the most integer bits (a sign bit more for an
  unsigned operand beside a signed one);
- passthrough layers pass their input's type on;
- the graph input, when it has no type: the type of the quantizer that reads it (a Clip or
  ReLU with a declared type, widened by a sign bit for the ReLU; a Quantize layer's
  ``input_type``), else ``DEFAULT_INPUT_T`` (truncating when a Sign reads it: flooring keeps
  every value's sign, rounding would turn a small negative value into a zero, whose sign is +1).

So the only roundings are the ones the model declares, where it declares them. A kind
whose output would need rounding (an average, a table) is refused unless its types are
given.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import UnsupportedLayerError
from hwprune.ir.activations import BatchNorm, LeakyReLU, Quantize, Sign
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Add, Clip, Concatenate, Layer, ReLU, UpSample
from hwprune.quant.calibrate import accumulator_type, input_type
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, Rounding, from_grid

#: The input type of a quantized model whose input has no quantizer: hls4ml's default
#: ``ap_fixed<16,6>``, rounding to nearest and saturating.
DEFAULT_INPUT_T = Fixed(16, 6, True, Rounding.RND, Overflow.SAT)


def _exact(width: int, int_bits: int, signed: bool, where: str) -> Fixed:
    if width > MAX_WIDTH:
        raise UnsupportedLayerError(f"layer {where!r}: holding its values exactly needs {width} bits "
                                    f"(at most {MAX_WIDTH})")
    return Fixed(max(width, 1), int_bits, signed, Rounding.TRN, Overflow.WRAP)


def exact_type(values: np.ndarray, where: str, max_width: int = 32) -> Fixed:
    """The narrowest signed type whose grid and range hold every value exactly."""
    nonzero = np.asarray(values, dtype=np.float64)
    nonzero = nonzero[nonzero != 0]
    if not nonzero.size:
        return Fixed(2, 2, True, Rounding.TRN, Overflow.WRAP)
    _, exponents = np.frexp(nonzero)  # |v| = m * 2^e with 0.5 <= m < 1: v * 2^(53 - e) is an integer
    for frac in range(-int(exponents.max()), 54 - int(exponents.min())):
        scaled = np.ldexp(nonzero, frac)
        if np.array_equal(scaled, np.round(scaled)):
            width = max(int(np.abs(scaled).max()).bit_length() + 1, 2)
            if width <= max_width:
                return Fixed(width, width - frac, True, Rounding.TRN, Overflow.WRAP)
            break
    raise UnsupportedLayerError(f"{where}: its float values have no exact fixed-point type of at most {max_width} "
                                "bits; declare their quantizer")


def _weighted(layer, in_t: Fixed, exact_weights: bool) -> Layer:
    if exact_weights:
        layer = layer.with_(weight_t=layer.weight_t or exact_type(layer.weight, f"layer {layer.name!r}: weights"),
                            bias_t=layer.bias_t or exact_type(layer.bias, f"layer {layer.name!r}: bias"))
    if layer.weight_t is None or layer.bias_t is None:
        raise UnsupportedLayerError(f"layer {layer.name!r} ({layer.kind}) has float weights in a quantized model: "
                                    "hwprune keeps a quantized model's arithmetic only when every weighted layer "
                                    "declares its weight and bias quantizers")
    w_q = from_grid(layer.weight, layer.weight_t, f"layer {layer.name!r}: weight")
    b_q = from_grid(layer.bias, layer.bias_t, f"layer {layer.name!r}: bias")
    accum_t = layer.accum_t or accumulator_type(w_q.reshape(w_q.shape[0], -1), b_q, in_t, layer.weight_t,
                                                layer.bias_t, layer.name)
    return layer.with_(accum_t=accum_t, result_t=layer.result_t or accum_t)


def _batchnorm(layer: BatchNorm, in_t: Fixed) -> Layer:
    scale_t = layer.scale_t or exact_type(layer.scale, f"layer {layer.name!r}: scale")
    bias_t = layer.bias_t or exact_type(layer.bias, f"layer {layer.name!r}: bias")
    frac = max(in_t.frac_bits + scale_t.frac_bits, bias_t.frac_bits)
    bound = (max(-in_t.min_int, in_t.max_int) * int(np.abs(np.ldexp(layer.scale, frac - in_t.frac_bits)).max())
             + int(np.abs(np.ldexp(layer.bias, frac)).max()))
    width = bound.bit_length() + 1
    return layer.with_(scale_t=scale_t, bias_t=bias_t,
                       result_t=layer.result_t or _exact(width, width - frac, True, layer.name))


def _leaky_relu(layer: LeakyReLU, in_t: Fixed) -> Layer:
    param_t = layer.param_t or exact_type(layer.alpha, f"layer {layer.name!r}: slope")
    frac = in_t.frac_bits + param_t.frac_bits
    slopes = np.abs(np.ldexp(layer.alpha, param_t.frac_bits)).astype(np.int64)
    bound = max(-in_t.min_int, in_t.max_int) * max(int(slopes.max()), 1 << param_t.frac_bits)
    width = bound.bit_length() + 1
    return layer.with_(param_t=param_t, result_t=layer.result_t or _exact(width, width - frac, True, layer.name))


def _output_type(layer: Layer, in_types: list[Fixed]) -> Fixed:
    in_t = in_types[0]
    if isinstance(layer, ReLU):
        return in_t if not in_t.signed else _exact(max(in_t.width - 1, 1), in_t.int_bits - 1, False, layer.name)
    if isinstance(layer, (Clip, UpSample)):
        return in_t
    if isinstance(layer, Concatenate):
        signed = any(t.signed for t in in_types)
        frac = max(t.frac_bits for t in in_types)
        int_bits = max(t.int_bits + (1 if signed and not t.signed else 0) for t in in_types)
        return _exact(int_bits + frac, int_bits, signed, layer.name)
    if isinstance(layer, Add):
        frac = max(t.frac_bits for t in in_types)
        int_bits = max(t.int_bits + (0 if t.signed else 1) for t in in_types) + 1
        return _exact(int_bits + frac, int_bits, True, layer.name)
    raise UnsupportedLayerError(f"layer {layer.name!r} ({layer.kind}) in a quantized model declares no output "
                                "type, and its output cannot be held exactly; hwprune reads it in float models only")


def _input_type(graph: Graph, default: Fixed) -> Fixed:
    readers = graph.consumers(graph.input.name)
    if len(readers) == 1 and isinstance(readers[0], Quantize):
        return readers[0].input_type()
    if len(readers) == 1 and isinstance(readers[0], (Clip, ReLU)) and readers[0].result_t is not None:
        t = readers[0].result_t
        # a ReLU's quantizer: negative inputs saturate to the lowest value, which the ReLU zeroes
        return t if isinstance(readers[0], Clip) or t.signed else t.with_(width=t.width + 1, int_bits=t.int_bits + 1,
                                                                          signed=True)
    if readers and all(isinstance(r, Sign) for r in readers):
        return default.with_(rounding=Rounding.TRN)
    return default


def complete_types(graph: Graph, input_t: Fixed = DEFAULT_INPUT_T, exact_weights: bool = False) -> Graph:
    """``graph`` with every type its layers leave undeclared set so that nothing rounds
    but what the model declares; ``input_t``: the graph input's type when it has none and
    no quantizer reads it; ``exact_weights``: undeclared weight and bias types are the
    narrowest that hold the values (else such a layer is refused)."""
    defaulted = graph.input_t is None and _input_type(graph, input_t) is input_t
    input_t = graph.input_t or _input_type(graph, input_t)
    types = {graph.input.name: input_t}
    layers = []
    for layer in graph.layers:
        in_types = [types[name] for name in layer.inputs]
        if layer.weighted:
            layer = _weighted(layer, in_types[0], exact_weights)
        elif isinstance(layer, BatchNorm):
            layer = _batchnorm(layer, in_types[0])
        elif isinstance(layer, LeakyReLU) and not layer.is_quantized():
            layer = _leaky_relu(layer, in_types[0])
        elif layer.spatial and layer.op == "max":
            layer = layer.with_(accum_t=layer.accum_t or in_types[0], result_t=layer.result_t or in_types[0])
        elif layer.computes and not layer.is_quantized():
            if set(layer.types()) != {"result_t"}:
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} ({layer.kind}) in a quantized model declares no types, and its output "
                    "cannot be held exactly; hwprune reads it in float models only")
            layer = layer.with_(result_t=_output_type(layer, in_types))
        types[layer.name] = layer.result_t if layer.computes else in_types[0]
        layers.append(layer)
    completed = graph.with_layers(layers, input_t=input_t)
    if defaulted:
        # The model does not say what it reads: kept (not a field, so any later change of the
        # graph drops it) for ``calibrate_input`` to complete it again with a calibrated input.
        object.__setattr__(completed, "_open_input", (graph, exact_weights))
    return completed


def calibrate_input(graph: Graph, x, bits: int = DEFAULT_INPUT_T.width) -> Graph:
    """``graph`` completed again with its input calibrated on ``x`` (``bits`` wide, the integer
    bits from the data, as a float model's input) when its input type was defaulted by
    ``complete_types``; else ``graph`` as it is. A framework such as QKeras reads raw floats
    where no quantizer reads the input: the data's range loses the fewest of their bits."""
    opened = getattr(graph, "_open_input", None)
    if opened is None:
        return graph
    source, exact_weights = opened
    x = graph.from_source(np.asarray(x, dtype=np.float64), "calibration inputs")
    return complete_types(source, input_type(x, bits), exact_weights)


def declares_types(graph: Graph) -> bool:
    """Whether any layer of a model read from a file carries a type (a quantized model)."""
    return any(t is not None for layer in graph.layers for t in layer.types().values())


__all__ = ["DEFAULT_INPUT_T", "calibrate_input", "complete_types", "declares_types", "exact_type"]
