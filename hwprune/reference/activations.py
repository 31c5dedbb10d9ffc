"""Integer reference kernels of LeakyReLU/PReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm and Quantize (semantics:
``hwprune.ir.activations``, which follow hls4ml 1.3.0's ``nnet_activation.h``).

The Sigmoid and Tanh tables are computed as hls4ml's C++ initialisers compute them, in
float32 with the C library's ``expf`` and ``tanhf`` (called through ctypes): numpy's own
float32 ``exp`` differs from glibc's in the last bit for about one table entry in ten,
which a fine ``table_t`` sees. The tables are therefore those of the C library of the
machine that runs the reference, which is the one hls4ml's C simulation links against.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from hwprune.errors import ModelError
from hwprune.ir.activations import (SELU_ALPHA, SELU_LAMBDA, SELU_LAMBDA_T, BatchNorm, HardSigmoid, LeakyReLU,
                                    Quantize, Selu, Sign, _TableActivation)
from hwprune.ir.fixed import Fixed, cast, from_grid, quantize
from hwprune.reference.core import kernel
from hwprune.reference.merge import product_bits

# hls4ml's table index is a C `int`.
INDEX_BITS = 31


@lru_cache(maxsize=1)
def _libm():
    """``(expf, tanhf)`` of the C library, or None where it cannot be found."""
    path = ctypes.util.find_library("m") or ctypes.util.find_library("c")
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    fns = []
    for name in ("expf", "tanhf"):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
        fns.append(fn)
    return tuple(fns)


def _float32_values(function: str, inputs: np.ndarray) -> np.ndarray:
    lib = _libm()
    if function == "selu":  # `lambda * (alpha * (std::exp(x) - 1.))`: expf, the rest in double, returned as float
        e = np.exp(inputs) if lib is None else np.array([lib[0](float(v)) for v in inputs], dtype=np.float32)
        return (SELU_LAMBDA * (SELU_ALPHA * (e.astype(np.float64) - 1.0))).astype(np.float32)
    if function == "sigmoid":
        if lib is None:
            e = np.exp(-inputs)
        else:
            e = np.array([lib[0](float(-v)) for v in inputs], dtype=np.float32)
        s = (np.float32(1) + e).astype(np.float32)  # `1 + std::exp(-input)` in float
        return (1.0 / s.astype(np.float64)).astype(np.float32)  # `1.0 / ...` in double, returned as float
    if lib is None:
        return np.tanh(inputs)
    return np.array([lib[1](float(v)) for v in inputs], dtype=np.float32)


@lru_cache(maxsize=16)
def _table(function: str, table_range: int, size: int, table_t: Fixed) -> np.ndarray:
    i = np.arange(size, dtype=np.float64)
    if function == "selu":  # `float in_val = -8.0 * ii / float(N)`: (-8, 0] only
        inputs = (-float(table_range) * i / size).astype(np.float32)
    else:  # `float in_val = 2 * range * (ii - float(N) / 2.0) / float(N)`: exact multiples of 2 * range / N.
        inputs = (2.0 * table_range * (i - size / 2.0) / size).astype(np.float32)
    q = quantize(_float32_values(function, inputs).astype(np.float64), table_t)
    q.setflags(write=False)
    return q


def table(layer: _TableActivation) -> np.ndarray:
    """The layer's table as integers of its ``table_t``."""
    if layer.table_t is None:
        raise ModelError(f"layer {layer.name!r} has no table type; quantize the graph first")
    return _table(layer.function, layer.table_range, layer.table_size, layer.table_t)


def index_step(layer: _TableActivation, in_t: Fixed) -> int:
    """Table entries per unit of input (``table_size / width``), after checking that
    hls4ml's ``int`` index cannot overflow for this input type."""
    k = layer.table_size // layer.table_width
    f = in_t.frac_bits
    bound = max(-in_t.min_int, in_t.max_int) * k
    bound = bound >> f if f >= 0 else bound << -f
    if bound >= 1 << INDEX_BITS:
        raise ModelError(f"layer {layer.name!r}: input {in_t} times {k} table entries per unit overflows hls4ml's "
                         "int table index; use fewer integer bits before the activation")
    return k


def table_index(layer: _TableActivation, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    """hls4ml's ``int data_round = x * size / (2 * range)`` (an exact division, then the
    conversion to int truncating towards zero), plus ``size / 2``, clamped to the table."""
    k = index_step(layer, in_t)
    scaled = x * np.int64(k)
    f = in_t.frac_bits
    if f > 0:
        rounded = np.where(scaled < 0, -((-scaled) >> np.int64(f)), scaled >> np.int64(f))
    else:
        rounded = scaled << np.int64(-f)
    return np.clip(rounded + layer.table_size // 2, 0, layer.table_size - 1)


def _table_kernel(layer: _TableActivation, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    t = table(layer)
    return cast(t[table_index(layer, x, in_t)], layer.table_t.frac_bits, layer.result_t)


kernel("sigmoid")(_table_kernel)
kernel("tanh")(_table_kernel)


def selu_lambda() -> int:
    """hls4ml's SELU scale as an integer of ``SELU_LAMBDA_T``."""
    return int(quantize(SELU_LAMBDA, SELU_LAMBDA_T))


def selu_index(layer: Selu, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    """hls4ml's ``int index = x * size / -8`` for ``x < 0``: ``-x * size / 8`` (exact) truncated
    (it is not negative: a floor), clamped to the table."""
    k = index_step(layer, in_t)
    scaled = -x * np.int64(k)
    f = in_t.frac_bits
    rounded = scaled >> np.int64(f) if f > 0 else scaled << np.int64(-f)
    return np.clip(rounded, 0, layer.table_size - 1)


@kernel("selu")
def selu(layer: Selu, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    if product_bits([in_t, SELU_LAMBDA_T]) > 63:
        raise ModelError(f"layer {layer.name!r}: the product of {in_t} and the SELU scale ({SELU_LAMBDA_T}) needs "
                         f"{product_bits([in_t, SELU_LAMBDA_T])} bits; use a narrower input type")
    positive = cast(x * np.int64(selu_lambda()), in_t.frac_bits + SELU_LAMBDA_T.frac_bits, layer.result_t)
    negative = cast(table(layer)[selu_index(layer, np.minimum(x, 0), in_t)], layer.table_t.frac_bits, layer.result_t)
    return np.where(x >= 0, positive, negative)


def leaky_slopes(layer: LeakyReLU, in_t: Fixed) -> np.ndarray:
    """The slopes as integers of ``param_t``, after checking the product fits int64."""
    if product_bits([in_t, layer.param_t]) > 63:
        raise ModelError(f"layer {layer.name!r}: the product of {in_t} and slope type {layer.param_t} needs "
                         f"{product_bits([in_t, layer.param_t])} bits; use narrower types")
    return from_grid(layer.alpha, layer.param_t, f"layer {layer.name!r} slope")


@kernel("leaky_relu")
def leaky_relu(layer: LeakyReLU, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    a = leaky_slopes(layer, in_t)
    a = a if layer.per_channel else a[0]  # per channel: numpy repeats it along the last axis
    positive = cast(x, in_t.frac_bits, layer.result_t)
    negative = cast(x * a, in_t.frac_bits + layer.param_t.frac_bits, layer.result_t)
    return np.where(x > 0, positive, negative)


def _ap_mul(a: tuple[int, bool], b: tuple[int, bool]) -> tuple[int, bool]:
    return a[0] + b[0], a[1] or b[1]


def _ap_add(a: tuple[int, bool], b: tuple[int, bool]) -> tuple[int, bool]:
    # ap_fixed's sum: one more integer bit than the wider operand, one more again when only
    # the other operand is signed.
    return max(a[0] + (b[1] and not a[1]), b[0] + (a[1] and not b[1])) + 1, a[1] or b[1]


def hard_sigmoid_grid(layer: HardSigmoid, in_t: Fixed) -> tuple[int, int, int]:
    """``(slope, shift on the sum's grid, fraction bits of the sum)`` as integers; checks
    that hls4ml's ``auto`` sum type holds the clamp bound 1 and that int64 holds the sum."""
    s = int(quantize(layer.slope, layer.slope_t))
    h = int(quantize(layer.shift, layer.shift_t))
    frac = max(in_t.frac_bits + layer.slope_t.frac_bits, layer.shift_t.frac_bits)
    int_bits, signed = _ap_add(_ap_mul((in_t.int_bits, in_t.signed), (layer.slope_t.int_bits, layer.slope_t.signed)),
                               (layer.shift_t.int_bits, layer.shift_t.signed))
    if int_bits < (2 if signed else 1):
        raise ModelError(f"layer {layer.name!r}: hls4ml's slope * x + shift type has {int_bits} integer bits and "
                         f"cannot hold the clamp bound 1; give slope_t at least 0 integer bits")
    if int_bits + frac > 62:
        raise ModelError(f"layer {layer.name!r}: slope * x + shift needs {int_bits + frac} bits; use narrower types")
    return s, h << (frac - layer.shift_t.frac_bits), frac


def batchnorm_grid(layer: BatchNorm, in_t: Fixed) -> tuple[np.ndarray, np.ndarray, int]:
    """``(scales, biases, frac)``: integers such that ``x * scales + biases`` is the exact sum
    ``x * scale + bias`` with ``frac`` fraction bits (the finer of the product's and the
    bias's grid); checks that int64 holds it."""
    s = from_grid(layer.scale, layer.scale_t, f"layer {layer.name!r} scale")
    b = from_grid(layer.bias, layer.bias_t, f"layer {layer.name!r} bias")
    product_frac = in_t.frac_bits + layer.scale_t.frac_bits
    frac = max(product_frac, layer.bias_t.frac_bits)
    s, b = s << np.int64(frac - product_frac), b << np.int64(frac - layer.bias_t.frac_bits)
    bound = max(-in_t.min_int, in_t.max_int) * int(np.abs(s).max()) + int(np.abs(b).max())
    if bound.bit_length() > 62:
        raise ModelError(f"layer {layer.name!r}: x * scale + bias for input {in_t}, scale {layer.scale_t} and bias "
                         f"{layer.bias_t} needs {bound.bit_length() + 1} bits; use narrower types")
    return s, b, frac


@kernel("batchnorm")
def batchnorm(layer: BatchNorm, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    s, b, frac = batchnorm_grid(layer, in_t)  # per channel: numpy repeats them along the last axis
    return cast(x * s + b, frac, layer.result_t)


@kernel("hard_sigmoid")
def hard_sigmoid(layer: HardSigmoid, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    s, h, frac = hard_sigmoid_grid(layer, in_t)
    v = (x * np.int64(s)) << np.int64(frac - in_t.frac_bits - layer.slope_t.frac_bits)
    v = np.clip(v + np.int64(h), 0, np.int64(1) << np.int64(frac))
    return cast(v, frac, layer.result_t)


def quantize_shifts(layer: Quantize, in_t: Fixed) -> tuple[np.ndarray, np.ndarray]:
    """Per parameter element: fraction bits dropped from the input to reach the element's
    grid, and bits shifted left from there onto ``result_t``'s grid (0 where the width is 0),
    after checking that ``result_t`` holds every element type exactly."""
    out_t = layer.result_t
    for t in layer.element_types().values():
        if t.frac_bits > out_t.frac_bits or t.int_bits - int(t.signed) > out_t.int_bits - int(out_t.signed) or (
                t.signed and not out_t.signed):
            raise ModelError(f"layer {layer.name!r}: result type {out_t} does not hold the element type {t}")
    frac = np.where(layer.widths > 0, layer.widths - layer.int_bits, out_t.frac_bits)
    return in_t.frac_bits - frac, out_t.frac_bits - frac


@kernel("quantize")
def quantize_elements(layer: Quantize, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    quantize_shifts(layer, in_t)
    widths, int_bits, signed = layer.parameters(x.shape[1:])
    y = np.zeros_like(x)
    for (width, ints, sign), t in layer.element_types().items():
        here = (widths == width) & (int_bits == ints) & (signed == sign)
        q = cast(x, in_t.frac_bits, t) << np.int64(layer.result_t.frac_bits - t.frac_bits)
        y = np.where(here, q, y)
    return y


@kernel("sign")
def sign(layer: Sign, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    # +-1 on the grid where +-scale is one unit, then the result type's cast
    return cast(np.where(x >= 0, np.int64(1), np.int64(-1)), layer.frac_bits, layer.result_t)
