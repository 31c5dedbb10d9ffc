"""Sliding windows over channels-last batches, shared by the integer reference and the
float simulation of convolutions and pooling (``hwprune.ir.spatial`` defines the geometry).

1-D layers are computed as 2-D ones of height 1, so there is one implementation.
"""

from __future__ import annotations

import numpy as np


def as_2d(x: np.ndarray, layer) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], tuple]:
    """``x`` ``(N, *spatial, C)`` and the layer's window, stride and padding, all in 2-D."""
    window = getattr(layer, "pool_size", None) or layer.kernel_size
    if layer.rank == 1:
        return x[:, None], (1, window[0]), (1, layer.stride[0]), ((0, 0), layer.padding[0])
    return x, tuple(window), tuple(layer.stride), tuple(layer.padding)


def patches(x: np.ndarray, window, stride, padding, fill=0) -> np.ndarray:
    """``(N, H, W, C)`` -> ``(N, Ho, Wo, kh, kw, C)``: every window, padded with ``fill``."""
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    kh, kw = window
    views = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (N, Hp-kh+1, Wp-kw+1, C, kh, kw)
    views = views[:, :: stride[0], :: stride[1]]
    return np.moveaxis(views, 3, 5)


def inside(shape_hw: tuple[int, int], window, stride, padding) -> np.ndarray:
    """``(Ho, Wo, kh, kw)`` bool: which window cells lie inside the input (not padding)."""
    ones = np.ones((1, *shape_hw, 1), dtype=bool)
    return patches(ones, window, stride, padding, fill=False)[0, ..., 0]


def conv_columns(x: np.ndarray, layer) -> np.ndarray:
    """The conv's input per output position and filter column.

    Returns ``(N, Ho, Wo, K)`` (one row shared by every filter; ``K = kh*kw*cin``, the
    filter matrix's column order) or, for a depthwise conv, ``(N, Ho, Wo, O, kh*kw)``.
    """
    x2, window, stride, padding = as_2d(x, layer)
    p = patches(x2, window, stride, padding)  # (N, Ho, Wo, kh, kw, C)
    n, ho, wo = p.shape[:3]
    if layer.depthwise:
        source = np.arange(layer.out_channels) // layer.multiplier(x.shape[-1])
        p = p[..., source]  # (N, Ho, Wo, kh, kw, O)
        return np.moveaxis(p, 5, 3).reshape(n, ho, wo, layer.out_channels, -1)
    return p.reshape(n, ho, wo, -1)


def output_layout(y: np.ndarray, layer) -> np.ndarray:
    """``(N, Ho, Wo, C)`` back to the layer's rank (drops the height axis in 1-D)."""
    return y[:, 0] if layer.rank == 1 else y


def float_spatial(layer, x: np.ndarray) -> np.ndarray:
    """The float (float64) value of a conv or pooling layer on a channels-last batch."""
    if layer.kind in ("globalavgpool1d", "globalavgpool2d"):
        return x.reshape(x.shape[0], -1, x.shape[-1]).mean(axis=1)
    if layer.kind in ("conv1d", "conv2d"):
        columns = conv_columns(x, layer)
        w = layer.filter_matrix
        y = np.einsum("...ok,ok->...o", columns, w) if layer.depthwise else columns @ w.T
        return output_layout(y + layer.bias, layer)
    x2, window, stride, padding = as_2d(x, layer)
    if layer.op == "max":
        return output_layout(patches(x2, window, stride, padding, fill=-np.inf).max(axis=(3, 4)), layer)
    total = patches(x2, window, stride, padding).sum(axis=(3, 4))
    count = window[0] * window[1] if layer.count_pad else inside(x2.shape[1:3], window, stride, padding).sum(axis=(2, 3))
    return output_layout(total / np.reshape(count, (1, *np.shape(count), 1)) if np.ndim(count) else total / count, layer)
