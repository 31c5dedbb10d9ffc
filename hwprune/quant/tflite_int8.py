"""Float graph -> TFLite's int8 dialect, quantized as TFLite's converter does (post-training,
full integer), for ``hwprune export --quant tflite-int8``.

The rules (those of the TFLite converter's int8 post-training quantization):

- Activations: per-tensor affine int8 from the calibration data's min and max, the range
  widened to include 0 so that 0 is exact: ``scale = (max - min) / 255``, the zero point
  ``-128 - min / scale`` rounded and kept in -128..127 (MLIR's ``fakeQuantAttrsToType``
  nudging). A tensor that is 0 everywhere gets scale 1 and zero point -128.
- Weights: per output channel, symmetric: ``scale = max|w| / 127``, zero point 0, values
  ``round(w / scale)`` in -127..127 (an all-zero channel, a pruned one, gets scale 1).
- Biases: int32 at scale ``s_in * s_w`` per channel.
- ReLU and ReLU6 (``Clip(0, 6)``) after a Dense, Conv2D or pooling layer are fused into it
  as the clamp TFLM computes (``activation_range``); the layer's output type is then the
  range after the activation. Pools keep their input's type, as TFLite requires.
- The multipliers and shifts are TFLM's (``conv_multipliers``).

The graph must be a chain of Dense, Conv2D (depthwise too), MaxPool2D, AvgPool2D,
GlobalAvgPool2D, Flatten/Reshape, ReLU/ReLU6, Identity and a final Softmax; anything else
is one ``UnsupportedLayerError`` naming the layer. Layer names are kept.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8AvgPool2D, Int8Conv2D, Int8Dense, Int8MaxPool2D, int8_types
from hwprune.ir.layers import Clip, Dense, Flatten, Identity, ReLU, Reshape, Softmax
from hwprune.ir.spatial import AvgPool2D, Conv2D, GlobalAvgPool2D, MaxPool2D
from hwprune.quant.calibrate import float_forward
from hwprune.ir.int8_types import INT32_MAX, INT32_MIN, Int8Affine, activation_range, conv_multipliers

#: ``--quant`` choices: the power-of-two ap_fixed types (the default) or TFLite's int8 scheme
QUANT_SCHEMES = ("ap_fixed", "tflite-int8")
INT8_QUANT = "tflite-int8"


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def affine_from_range(lo: float, hi: float) -> Int8Affine:
    """The int8 affine type of a tensor seen in ``[lo, hi]`` (0 always representable)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < np.finfo(np.float64).eps:
        return Int8Affine(1.0, -128)
    scale = (hi - lo) / 255.0
    zp_from_min = -128 - lo / scale
    zero_point = -128 if zp_from_min < -128 else 127 if zp_from_min > 127 else int(_round_half_away(zp_from_min))
    return Int8Affine(scale, zero_point)


def weight_scales(weight: np.ndarray) -> np.ndarray:
    """Per output channel ``max|w| / 127`` as float32 values (1 for an all-zero channel)."""
    max_abs = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1)
    scales = np.where(max_abs > 0, max_abs / 127.0, 1.0).astype(np.float32)
    return scales.astype(np.float64)


def quantize_weights(weight: np.ndarray, scales: np.ndarray) -> np.ndarray:
    per_channel = np.asarray(scales, dtype=np.float32).reshape(-1, *([1] * (weight.ndim - 1)))
    q = _round_half_away((weight.astype(np.float32) / per_channel).astype(np.float64))
    return np.clip(q, -127, 127).astype(np.int64)  # a pruned (zero) weight stays exactly 0


def quantize_bias(bias: np.ndarray, input_scale: float, scales: np.ndarray, where: str) -> np.ndarray:
    bias_scale = (np.float32(input_scale) * np.asarray(scales, dtype=np.float32)).astype(np.float64)
    q = _round_half_away(np.asarray(bias, dtype=np.float64) / bias_scale)
    if np.any(q > INT32_MAX) or np.any(q < INT32_MIN):
        raise ModelError(f"{where}: a bias does not fit int32 at scale s_in * s_w (its input range is too narrow)")
    return q.astype(np.int64)


def _fused_activation(graph: Graph, layer) -> tuple[str, Optional[object]]:
    """The ReLU or ReLU6 that reads only ``layer``'s output and is its only reader: fused."""
    consumers = graph.consumers(layer.name)
    if len(consumers) != 1 or layer.name in graph.outputs:
        return "none", None
    nxt = consumers[0]
    if isinstance(nxt, ReLU):
        return "relu", nxt
    if isinstance(nxt, Clip) and (nxt.min_value, nxt.max_value) == (0.0, 6.0):
        return "relu6", nxt
    if isinstance(nxt, Clip) and (nxt.min_value, nxt.max_value) == (-1.0, 1.0):
        return "relu_n1_to_1", nxt
    return "none", None


def _unsupported(layer, why: str = "") -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"layer {layer.name!r} ({layer.kind}): {why or 'has no TFLite int8 counterpart here'}; --quant tflite-int8 "
        "takes chains of Dense, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Flatten, ReLU, ReLU6 and a final "
        "Softmax")


def quantize_tflite_int8(graph: Graph, x) -> Graph:
    """An int8-dialect copy of the float chain ``graph``, calibrated on ``x`` (the source
    model's layout)."""
    graph.require_chain("--quant tflite-int8")
    x = graph.from_source(np.asarray(x, dtype=np.float64), "calibration inputs")
    values = dict(float_forward(graph, graph.to_source(x), trace=True))
    values[graph.input.name] = x
    input_t = affine_from_range(float(x.min()), float(x.max()))
    t, shape = input_t, graph.input_shape
    layers, fused = [], set()
    for layer in graph.layers:
        if layer.name in fused:
            continue
        where = f"layer {layer.name!r}"
        activation, act_layer = _fused_activation(graph, layer)
        if isinstance(layer, (ReLU, Clip)):
            raise _unsupported(layer, "an activation must follow a Dense, Conv2D or pooling layer to be fused")
        out_name = act_layer.name if act_layer is not None else layer.name
        if act_layer is not None:
            fused.add(act_layer.name)
        out_shape = graph.shape_of(layer.name)
        if isinstance(layer, (Dense, Conv2D)):
            out = values[out_name]
            out_t = affine_from_range(float(out.min()), float(out.max()))
            scales = weight_scales(layer.weight)
            w_q = quantize_weights(layer.weight, scales)
            b_q = quantize_bias(layer.bias, t.scale, scales, where)
            mult, shift = conv_multipliers(t.scale, scales, out_t.scale)
            lo, hi = activation_range(activation, out_t)
            common = dict(weight=w_q, bias=b_q, **int8_types(out_t), weight_scale=scales, out_multiplier=mult,
                          out_shift=shift, act_min=lo, act_max=hi, inputs=layer.inputs)
            if isinstance(layer, Dense):
                new = Int8Dense(layer.name, **common)
            else:
                new = Int8Conv2D(layer.name, stride=layer.stride, padding=layer.padding, depthwise=layer.depthwise,
                                 **common)
            t = out_t
        elif isinstance(layer, (MaxPool2D, AvgPool2D, GlobalAvgPool2D)):
            if isinstance(layer, AvgPool2D) and layer.count_pad and any(p for pair in layer.padding for p in pair):
                raise _unsupported(layer, "an average that counts padded cells differs from TFLite's (cells inside)")
            lo, hi = activation_range(activation, t)  # TFLite pools keep their input's quantization
            if isinstance(layer, GlobalAvgPool2D):
                window = tuple(int(n) for n in shape[:2])
                new = Int8AvgPool2D(layer.name, pool_size=window, stride=window, padding=((0, 0), (0, 0)),
                                    accum_t=int8_types(t)["accum_t"], result_t=t, act_min=lo, act_max=hi,
                                    inputs=layer.inputs)
                layers.append(new)
                # TFLite's pool keeps (1, 1, C); the IR's global pool gives (C,)
                new = Reshape(f"{layer.name}_flat", target_shape=out_shape, inputs=(layer.name,))
            else:
                cls = Int8MaxPool2D if isinstance(layer, MaxPool2D) else Int8AvgPool2D
                new = cls(layer.name, pool_size=layer.pool_size, stride=layer.stride, padding=layer.padding,
                          accum_t=int8_types(t)["accum_t"], result_t=t, act_min=lo, act_max=hi, inputs=layer.inputs)
        elif isinstance(layer, (Flatten, Reshape, Identity)):
            new = Reshape(layer.name, target_shape=out_shape, inputs=layer.inputs)
        elif isinstance(layer, Softmax) and layer.name in graph.outputs:
            new = Softmax(layer.name, log=layer.log, inputs=layer.inputs)
        else:
            raise _unsupported(layer)
        layers.append(new)
        shape = out_shape
    # a chain again: each layer reads the one before it (a fused activation's readers read its layer)
    readers = [graph.input.name] + [layer.name for layer in layers]
    chained = [layer.with_(inputs=(prev,)) for prev, layer in zip(readers, layers)]
    return Graph(graph.name, (GraphInput(graph.input.name, graph.input_shape, input_t),), tuple(chained))
