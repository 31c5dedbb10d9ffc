"""Integer reference kernels of convolution and pooling (semantics: ``hwprune.ir.spatial``).

A conv is Dense over each output position's window: the filter matrix, the bias cast to
the accumulator, and the same summing rule (``reference.dense_sum``): the raw products
summed at once where that provably equals hls4ml's order, else each product cast to the
accumulator and added in filter order (kh, kw, cin) with the accumulator's overflow after
every addition. Taps on zero padding add an exact zero, which changes no accumulator.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import ModelError
from hwprune.ir.layers import Layer
from hwprune.ir.fixed import Fixed, apply_overflow, cast
from hwprune.reference.core import dense_integers, dense_sum, kernel
from hwprune.windows import as_2d, conv_columns, inside, output_layout, patches


@kernel("conv1d")
@kernel("conv2d")
def conv(layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    w, acc0 = dense_integers(layer)  # (O, K)
    acc_t = layer.accum_t
    plan = dense_sum(layer, in_t, w, acc0)
    columns = conv_columns(x, layer)  # (N, Ho, Wo, K) or depthwise (N, Ho, Wo, O, K)
    if plan.fast:
        raw = np.einsum("...ok,ok->...o", columns, w) if layer.depthwise else columns @ w.T
        acc = acc0 + (raw << np.int64(plan.shift))
        y = cast(apply_overflow(acc, acc_t), acc_t.frac_bits, layer.result_t)
        return output_layout(y, layer)
    product_frac = in_t.frac_bits + layer.weight_t.frac_bits
    acc = np.broadcast_to(acc0, (*columns.shape[:3], w.shape[0])).copy()
    for i in range(w.shape[1]):
        xi = columns[..., i] if layer.depthwise else columns[..., i : i + 1]
        acc = apply_overflow(acc + cast(xi * w[:, i], product_frac, acc_t), acc_t)
    return output_layout(cast(acc, acc_t.frac_bits, layer.result_t), layer)


@kernel("maxpool1d")
@kernel("maxpool2d")
def maxpool(layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    x2, window, stride, padding = as_2d(x, layer)
    # Padded cells never win: every window holds at least one input cell (IR rule).
    cells = patches(x2, window, stride, padding, fill=np.iinfo(np.int64).min)
    largest = cells.max(axis=(3, 4))
    y = cast(cast(largest, in_t.frac_bits, layer.accum_t), layer.accum_t.frac_bits, layer.result_t)
    return output_layout(y, layer)


def _check_shifts(layer: Layer, in_t: Fixed) -> int:
    acc_t = layer.accum_t
    frac = max(acc_t.frac_bits, in_t.frac_bits)
    widest = max(acc_t.width + frac - acc_t.frac_bits, in_t.width + frac - in_t.frac_bits) + 1
    if widest > 63:
        raise ModelError(f"layer {layer.name!r}: adding {in_t} to accumulator {acc_t} needs {widest} bits; "
                         "use types with closer fraction bits")
    return frac


def average(layer: Layer, cells: np.ndarray, cell_inside: np.ndarray, count: np.ndarray, in_t: Fixed) -> np.ndarray:
    """hls4ml's ``avg``: ``acc = accum(acc + x)`` over the cells inside the input, in
    order, then the accumulator's integer divided by ``count`` truncated toward zero,
    then the result cast. ``cells`` ``(N, Ho, Wo, T, C)``, ``cell_inside`` ``(Ho, Wo, T)``,
    ``count`` ``(Ho, Wo)``."""
    acc_t = layer.accum_t
    frac = _check_shifts(layer, in_t)
    acc = np.zeros((cells.shape[0], cells.shape[1], cells.shape[2], cells.shape[4]), dtype=np.int64)
    for t in range(cells.shape[3]):
        use = cell_inside[None, :, :, t, None]
        if not use.any():
            continue
        total = (acc << np.int64(frac - acc_t.frac_bits)) + (cells[:, :, :, t] << np.int64(frac - in_t.frac_bits))
        acc = np.where(use, cast(total, frac, acc_t), acc)
    count = count[None, :, :, None].astype(np.int64)
    quotient = np.sign(acc) * (np.abs(acc) // count)  # C division: truncated toward zero
    return cast(quotient, acc_t.frac_bits, layer.result_t)


@kernel("avgpool1d")
@kernel("avgpool2d")
def avgpool(layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    x2, window, stride, padding = as_2d(x, layer)
    cells = patches(x2, window, stride, padding)  # (N, Ho, Wo, kh, kw, C)
    n, ho, wo = cells.shape[:3]
    cell_inside = inside(x2.shape[1:3], window, stride, padding).reshape(ho, wo, -1)
    count = np.full((ho, wo), window[0] * window[1]) if layer.count_pad else cell_inside.sum(axis=2)
    y = average(layer, cells.reshape(n, ho, wo, -1, x.shape[-1]), cell_inside, count, in_t)
    return output_layout(y, layer)


@kernel("globalavgpool1d")
@kernel("globalavgpool2d")
def globalavgpool(layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    cells = x.reshape(x.shape[0], 1, 1, -1, x.shape[-1])
    t = cells.shape[3]
    y = average(layer, cells, np.ones((1, 1, t), dtype=bool), np.full((1, 1), t), in_t)
    return y.reshape(x.shape[0], x.shape[-1])
