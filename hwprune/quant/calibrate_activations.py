"""Float simulation and type choice of LeakyReLU/PReLU, HardSigmoid, Sigmoid, Tanh, Selu and
BatchNorm (``quant.calibrate`` calls both).

- LeakyReLU: ``param_t`` 16 bits wide with the integer bits the largest slope needs (RND,
  SAT), the slopes moved onto its grid; ``result_t`` from the calibration data, signed.
- HardSigmoid: ``slope_t`` and ``shift_t`` 16 bits wide with at least 0 integer bits
  (hls4ml's defaults are ``ufixed<16,0>`` and ``ufixed<2,0>``; 0.5 is exact in both),
  truncating as hls4ml's constants do; ``result_t`` unsigned ``activation_bits`` with one
  integer bit, so the clamp bound 1 is a value.
- Sigmoid: ``table_t`` ``fixed<activation_bits + 4, 1>`` (the table's values are in
  ``[0, 1)``; four more fraction bits than the result, so the final cast rounds the table
  value once); ``result_t`` ``ufixed<activation_bits, 0>`` (RND, SAT). Tanh: the same with
  ``result_t`` signed, ``fixed<activation_bits, 1>``.
- Selu: ``table_t`` ``fixed<activation_bits + 4, 2>`` (the table's values are in
  ``(-1.76, 0]``); ``result_t`` from the calibration data, signed (the positive side is
  ``lambda * x``).
- The tables of Sigmoid, Tanh and Selu (hls4ml's ``table_size``, which hls4ml users set per
  layer; its default is 1024): one entry per value of the input's grid, ``2^f`` entries per
  unit for an input of ``f`` fraction bits, so every input in the table's range reads the
  function at its own value and the table adds no error of its own; never fewer than one
  entry per unit, never more than ``MAX_TABLE_SIZE``. A finer table than the input's grid
  would give the same outputs (its extra entries are never read); hls4ml's fixed 1024
  entries are a step of 1/128 (Tanh, Selu) or 1/64 (Sigmoid), coarser than a 16-bit input's
  grid, and move the outputs of a 16-bit model by up to that step. At 8 bits the input has
  at most a few fraction bits and the table is smaller than hls4ml's default.
- Sign: ``result_t`` ``fixed<2, 2 + log2(scale)>``, which holds ``+-scale`` exactly.
- Quantize: declares its own ``result_t`` (the element types' common grid); the float
  simulation casts each element to its type.
- BatchNorm: ``scale_t`` ``weight_bits`` wide with the integer bits the largest scale needs
  (RND, SAT); ``bias_t`` with the product's fraction bits (the bias enters the sum without
  rounding, as a Dense bias) and the integer bits of the largest bias, at most 32 bits;
  ``result_t`` from the calibration data, as a Dense layer's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hwprune.ir.activations import (SELU_ALPHA, SELU_LAMBDA, BatchNorm, HardSigmoid, LeakyReLU, Quantize, Selu, Sigmoid,
                                    Sign, Tanh, _TableActivation)
from hwprune.ir.base import Layer
from hwprune.ir.fixed import Fixed, Overflow, Rounding, int_bits_for, quantize, to_real

ACTIVATIONS = (LeakyReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm, Quantize, Sign)
CONSTANT_BITS = 16
#: The most table entries calibration gives one activation: 8192 entries resolve a Tanh or
#: Selu input of 10 fraction bits (a 16-bit ``fixed<16,6>``), a Sigmoid input of 9; at a
#: 16-bit export's 20-bit ``table_t`` (a 32-bit C integer) that is 32 KiB of flash.
MAX_TABLE_SIZE = 8192


def table_size(layer: _TableActivation, in_t: Fixed) -> int:
    """The entries of ``layer``'s table for an input of type ``in_t``: ``2^f`` per unit of the
    table's width (one per input value), at least one per unit, at most ``MAX_TABLE_SIZE``
    (a multiple of every table's width, so the index stays an exact division)."""
    per_unit = 1 << min(max(in_t.frac_bits, 0), MAX_TABLE_SIZE.bit_length())
    return min(layer.table_width * per_unit, MAX_TABLE_SIZE)


def float_activation(layer: Layer, x: np.ndarray) -> np.ndarray:
    if isinstance(layer, LeakyReLU):
        return np.where(x > 0, x, x * layer.alpha)  # per channel: alpha meets the last axis
    if isinstance(layer, HardSigmoid):
        return np.clip(layer.slope * x + layer.shift, 0.0, 1.0)
    if isinstance(layer, Sigmoid):
        return 1.0 / (1.0 + np.exp(-x))
    if isinstance(layer, Quantize):
        return _float_quantize(layer, x)
    if isinstance(layer, BatchNorm):
        return x * layer.scale + layer.bias  # per channel: the last axis
    if isinstance(layer, Sign):
        return np.where(x >= 0, layer.scale, -layer.scale)
    if isinstance(layer, Selu):
        return SELU_LAMBDA * np.where(x >= 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))
    return np.tanh(x)


def _float_quantize(layer: Quantize, x: np.ndarray) -> np.ndarray:
    widths, int_bits, signed = layer.parameters(x.shape[1:])
    y = np.zeros_like(x)
    for (width, ints, sign), t in layer.element_types().items():
        here = (widths == width) & (int_bits == ints) & (signed == sign)
        y = np.where(here, to_real(quantize(x, t), t), y)
    return y


def _constant_type(value: float, at_least_int: Optional[int], rounding: Rounding, overflow: Overflow) -> Fixed:
    signed = value < 0
    int_bits = int_bits_for(abs(value), signed)
    if at_least_int is not None:
        int_bits = max(int_bits, at_least_int + (1 if signed else 0))
    return Fixed(CONSTANT_BITS, int_bits, signed, rounding, overflow)


def quantize_activation(layer: Layer, out: np.ndarray, config, given: dict, result_type,
                        in_t: Optional[Fixed] = None) -> Layer:
    """The layer with its types chosen (``given``: the types the user set; ``result_type``:
    ``calibrate``'s rule for a signed result from data; ``in_t``: the input's type)."""
    act = config.activation_bits
    result = given.get("result")
    if isinstance(layer, Quantize):  # its element types are the model's: the result holds them all
        return layer.with_(result_t=result or layer.result_t or layer.common_type())
    if isinstance(layer, BatchNorm):
        scale_t = given.get("scale") or Fixed(config.weight_bits, int_bits_for(float(np.abs(layer.scale).max()), True),
                                               True, Rounding.RND, Overflow.SAT)
        bias_int = int_bits_for(float(np.abs(layer.bias).max()), True)
        bias_t = given.get("bias") or Fixed(min(max(bias_int + in_t.frac_bits + scale_t.frac_bits, 2), 32), bias_int,
                                            True, Rounding.RND, Overflow.SAT)
        return layer.with_(scale=to_real(quantize(layer.scale, scale_t), scale_t), scale_t=scale_t,
                           bias=to_real(quantize(layer.bias, bias_t), bias_t), bias_t=bias_t,
                           result_t=result or result_type(out))
    if isinstance(layer, LeakyReLU):
        param_t = given.get("param") or Fixed(CONSTANT_BITS, int_bits_for(float(np.abs(layer.alpha).max()), True),
                                              True, Rounding.RND, Overflow.SAT)
        alpha = to_real(quantize(layer.alpha, param_t), param_t)
        return layer.with_(alpha=alpha, param_t=param_t, result_t=result or result_type(out))
    if isinstance(layer, HardSigmoid):
        # TRN, WRAP: what hls4ml's FixedPrecisionType gives a constant by default.
        slope_t = given.get("slope") or _constant_type(layer.slope, 0, Rounding.TRN, Overflow.WRAP)
        shift_t = given.get("shift") or _constant_type(layer.shift, 0, Rounding.TRN, Overflow.WRAP)
        return layer.with_(slope_t=slope_t, shift_t=shift_t,
                           result_t=result or Fixed(act, 1, False, config.rounding, config.overflow))
    if isinstance(layer, Sign):
        return layer.with_(result_t=result or Fixed(2, 2 - layer.frac_bits, True, Rounding.TRN, Overflow.WRAP))
    if isinstance(layer, Selu):  # the table holds [-1.76, 0]; the positive side grows with x: from the data
        table_t = given.get("table") or Fixed(act + 4, 2, True, Rounding.TRN, Overflow.WRAP)
        return layer.with_(table_t=table_t, table_size=table_size(layer, in_t), result_t=result or result_type(out))
    table_t = given.get("table") or Fixed(act + 4, 1, True, Rounding.TRN, Overflow.WRAP)
    signed = isinstance(layer, Tanh)
    return layer.with_(table_t=table_t, table_size=table_size(layer, in_t),
                       result_t=result or Fixed(act, 1 if signed else 0, signed, config.rounding, config.overflow))
