"""BatchNorm folding for the torch frontends (``torch_graph``): a BatchNorm in eval mode is
``scale * x + shift`` per feature or channel, merged into the weights of the Linear or conv
before it, or (when nothing but Identity or Dropout comes between) after it."""

from __future__ import annotations

import numpy as np

from hwprune.errors import ShapeError, UnsupportedLayerError, WeightError
from hwprune.ir.layers import WeightedLayer


def finite(path: str, kind: str, label: str, values: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise WeightError(f"module {path!r} ({kind}): {label} has a non-finite value {values[idx]} at index {idx}")
    return values


def linear_arrays(path: str, linear) -> tuple[np.ndarray, np.ndarray]:
    weight = linear.weight.detach().cpu().double().numpy()
    bias = linear.bias.detach().cpu().double().numpy() if linear.bias is not None else np.zeros(weight.shape[0])
    return finite(path, "Linear", "weight", weight), finite(path, "Linear", "bias", bias)


def batchnorm_affine(path: str, bn) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm1d/2d in eval mode as ``scale * x + shift`` per feature or channel."""
    kind = type(bn).__name__
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(f"module {path!r} ({kind}): it keeps no running statistics "
                                    "(track_running_stats=False), so it has no fixed inference form to fold")
    mean = finite(path, kind, "running_mean", bn.running_mean.detach().cpu().double().numpy())
    var = finite(path, kind, "running_var", bn.running_var.detach().cpu().double().numpy())
    gamma = bn.weight.detach().cpu().double().numpy() if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.detach().cpu().double().numpy() if bn.bias is not None else np.zeros_like(mean)
    scale = finite(path, kind, "weight", gamma) / np.sqrt(var + bn.eps)
    return scale, finite(path, kind, "bias", beta) - mean * scale


def fold_after(layer: WeightedLayer, path: str, scale: np.ndarray, shift: np.ndarray) -> WeightedLayer:
    """BatchNorm(layer(x)) = layer with (diag(scale) W, scale * b + shift)."""
    if scale.shape != (layer.out_channels,):
        raise ShapeError(f"module {path!r}: BatchNorm over {scale.size} features follows {layer.name!r} with "
                         f"{layer.out_channels} outputs")
    axes = (-1,) + (1,) * (layer.weight.ndim - 1)
    return layer.with_(weight=layer.weight * scale.reshape(axes), bias=layer.bias * scale + shift)


def fold_before_conv(pending, conv: WeightedLayer) -> WeightedLayer:
    """conv(scale * x + shift): exact when no zero padding meets the shifted values."""
    path, scale, shift, kind = pending
    if any(p != (0, 0) for p in conv.padding) and np.any(shift != 0):
        raise UnsupportedLayerError(f"module {path!r} ({kind}) cannot be folded into the padded conv "
                                    f"{conv.name!r} after it (its zero padding would not be shifted); fold it "
                                    "into the layer before it")
    channels = np.arange(conv.out_channels) // (conv.out_channels // scale.size) if conv.depthwise else None
    per_filter_scale = scale[channels][:, None] if conv.depthwise else scale[None, :]
    per_filter_shift = shift[channels][:, None] if conv.depthwise else shift[None, :]
    weight = conv.weight * per_filter_scale.reshape(per_filter_scale.shape[0], *([1] * (conv.rank)), -1)
    w = conv.weight.reshape(conv.out_channels, -1, conv.in_channels_per_group)
    bias = conv.bias + (w * per_filter_shift[:, None, :]).sum(axis=(1, 2))
    return conv.with_(weight=weight, bias=bias)
