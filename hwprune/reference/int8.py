"""Integer reference kernels of TFLite's int8 dialect (semantics: ``hwprune.ir.int8``).

They register in ``reference.KERNELS`` like every other kind, so ``reference.run`` runs an
int8 graph unchanged: ``in_t`` is the input's ``Int8Affine``. Each is TFLM's reference
kernel (``reference_integer_ops``) in int64 numpy; an accumulator that could leave int32
(where C would overflow) is refused when the layer is run, never silently wrapped.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import ModelError
from hwprune.ir.int8 import Int8Add, Int8AvgPool2D, Int8Conv2D, Int8Dense, Int8MaxPool2D
from hwprune.ir.int8_types import INT32_MAX, Int8Affine, add_int8, requantize
from hwprune.reference.core import kernel
from hwprune.windows import as_2d, conv_columns, inside, patches


def _check_in_t(layer, in_t) -> Int8Affine:
    if not isinstance(in_t, Int8Affine):
        raise ModelError(f"layer {layer.name!r}: an int8 layer needs an int8 affine input, got {in_t}")
    return in_t


def _check_accumulator(layer, w: np.ndarray, in_zp: int) -> None:
    """The largest |acc| any int8 input can produce must fit int32, as in TFLM's C."""
    x_abs = max(abs(-128 - in_zp), abs(127 - in_zp))
    bound = int(np.max(np.abs(layer.bias) + x_abs * np.abs(w).sum(axis=1)))
    if bound > INT32_MAX:
        raise ModelError(f"layer {layer.name!r}: its int32 accumulator can reach {bound}, beyond int32")


@kernel("int8_dense")
def int8_dense(layer: Int8Dense, x: np.ndarray, in_t) -> np.ndarray:
    zp = _check_in_t(layer, in_t).zero_point
    w = layer.filter_matrix.astype(np.int64)
    _check_accumulator(layer, w, zp)
    acc = (x - zp) @ w.T + layer.bias.astype(np.int64)
    return requantize(acc, layer.out_multiplier, layer.out_shift, layer.result_t.zero_point, layer.act_min, layer.act_max)


@kernel("int8_conv2d")
def int8_conv(layer: Int8Conv2D, x: np.ndarray, in_t) -> np.ndarray:
    zp = _check_in_t(layer, in_t).zero_point
    w = layer.filter_matrix.astype(np.int64)
    _check_accumulator(layer, w, zp)
    # zero padding of (x - zp) adds nothing: TFLM skips the taps outside the input
    columns = conv_columns(x - zp, layer)
    raw = np.einsum("...ok,ok->...o", columns, w) if layer.depthwise else columns @ w.T
    acc = raw + layer.bias.astype(np.int64)
    return requantize(acc, layer.out_multiplier, layer.out_shift, layer.result_t.zero_point, layer.act_min, layer.act_max)


@kernel("int8_avgpool2d")
def int8_avgpool(layer: Int8AvgPool2D, x: np.ndarray, in_t) -> np.ndarray:
    x2, window, stride, padding = as_2d(x, layer)
    total = patches(x2, window, stride, padding).sum(axis=(3, 4))  # padded cells are 0
    count = inside(x2.shape[1:3], window, stride, padding).sum(axis=(2, 3))[None, :, :, None].astype(np.int64)
    half = count // 2
    # C division truncates toward zero; numerators are rounded half away from zero first
    pos = (total + half) // count
    neg = -((-(total - half)) // count)
    return np.clip(np.where(total > 0, pos, neg), layer.act_min, layer.act_max)


@kernel("int8_maxpool2d")
def int8_maxpool(layer: Int8MaxPool2D, x: np.ndarray, in_t) -> np.ndarray:
    x2, window, stride, padding = as_2d(x, layer)
    largest = patches(x2, window, stride, padding, fill=np.iinfo(np.int64).min).max(axis=(3, 4))
    return np.clip(largest, layer.act_min, layer.act_max)


@kernel("int8_add")
def int8_add(layer: Int8Add, xs, in_ts) -> np.ndarray:
    a, b = xs
    t1, t2 = (_check_in_t(layer, t) for t in in_ts)
    return add_int8(a, b, layer.params(t1, t2))
