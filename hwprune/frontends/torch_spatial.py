"""torch convolution, pooling and padding modules <-> IR layers (used by ``frontends.torch``).

torch is channels-first (NCL, NCHW); the IR is channels-last. A conv weight
``(out, in/groups, *k)`` becomes ``(out, *k, in/groups)``; a Linear after a Flatten of a
spatial tensor gets its columns permuted from torch's ``(C, H, W)`` order to the IR's
``(H, W, C)`` order (``flatten_permutation``). Settings the IR has no counterpart for
(dilation, groups other than 1 or the input channels, padding modes other than zeros,
``ceil_mode``, ``divisor_override``, an adaptive output other than 1) are an
UnsupportedLayerError naming the module.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import UnsupportedLayerError, WeightError
from hwprune.ir.layers import (
    AvgPool1D, AvgPool2D, Conv1D, Conv2D, GlobalAvgPool1D, GlobalAvgPool2D, Layer, MaxPool1D, MaxPool2D,
)


def _nn():
    import torch

    return torch.nn


def _tuple(value, rank: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * rank


def spatial_types():
    """The torch module types this module converts."""
    nn = _nn()
    return (nn.Conv1d, nn.Conv2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d, nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)


def padding_module(path: str, module) -> tuple[tuple[int, int], ...]:
    """A ZeroPad/ConstantPad(0) module's padding as IR pairs (it folds into the next conv)."""
    nn = _nn()
    rank = 1 if isinstance(module, (nn.ZeroPad1d, nn.ConstantPad1d)) else 2
    if isinstance(module, (nn.ConstantPad1d, nn.ConstantPad2d)) and float(module.value) != 0.0:
        raise UnsupportedLayerError(f"module {path!r} ({type(module).__name__}): only zero padding is supported, "
                                    f"got value={module.value}")
    pad = _tuple(module.padding, 2 * rank)  # torch: (left, right[, top, bottom])
    if any(p < 0 for p in pad):
        raise UnsupportedLayerError(f"module {path!r} ({type(module).__name__}): negative padding {pad} (cropping)")
    return ((pad[0], pad[1]),) if rank == 1 else ((pad[2], pad[3]), (pad[0], pad[1]))


def _conv_padding(path: str, conv, rank: int) -> tuple[tuple[int, int], ...]:
    if conv.padding_mode != "zeros":
        raise UnsupportedLayerError(f"module {path!r} ({type(conv).__name__}): padding_mode={conv.padding_mode!r} "
                                    "is not supported; hwprune pads with zeros")
    if conv.padding == "valid":
        return ((0, 0),) * rank
    if conv.padding == "same":  # torch puts the odd pixel after (stride is 1 here)
        totals = [k - 1 for k in _tuple(conv.kernel_size, rank)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in _tuple(conv.padding, rank))


def conv_layer(path: str, conv, name: str, extra_padding=None) -> Layer:
    """An ``nn.Conv1d``/``nn.Conv2d`` as Conv1D/Conv2D (``extra_padding`` from a pad module before it)."""
    nn = _nn()
    rank = 1 if isinstance(conv, nn.Conv1d) else 2
    kind = type(conv).__name__
    if any(d != 1 for d in _tuple(conv.dilation, rank)):
        raise UnsupportedLayerError(f"module {path!r} ({kind}): dilation={conv.dilation} is not supported; "
                                    "hwprune supports dilation 1")
    depthwise = conv.groups > 1
    if depthwise and conv.groups != conv.in_channels:
        raise UnsupportedLayerError(f"module {path!r} ({kind}): groups={conv.groups} is not supported; hwprune "
                                    f"supports groups=1 and depthwise groups=in_channels ({conv.in_channels})")
    padding = _conv_padding(path, conv, rank)
    if extra_padding is not None:
        padding = tuple((a + c, b + d) for (a, b), (c, d) in zip(padding, extra_padding))
    weight = conv.weight.detach().cpu().double().numpy()
    _finite(path, kind, "weight", weight)
    bias = conv.bias.detach().cpu().double().numpy() if conv.bias is not None else np.zeros(weight.shape[0])
    _finite(path, kind, "bias", bias)
    cls = Conv1D if rank == 1 else Conv2D
    return cls(name, np.moveaxis(weight, 1, -1), bias, stride=_tuple(conv.stride, rank), padding=padding,
               depthwise=depthwise)


def _finite(path: str, kind: str, label: str, values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise WeightError(f"module {path!r} ({kind}): {label} has a non-finite value {values[idx]} at index {idx}")


def pool_layer(path: str, pool, name: str) -> Layer:
    nn = _nn()
    kind = type(pool).__name__
    if isinstance(pool, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        rank = 1 if isinstance(pool, nn.AdaptiveAvgPool1d) else 2
        if any(s != 1 for s in _tuple(pool.output_size, rank)):
            raise UnsupportedLayerError(f"module {path!r} ({kind}): output_size={pool.output_size} is not "
                                        "supported; hwprune supports output_size=1 (global average pooling)")
        return (GlobalAvgPool1D if rank == 1 else GlobalAvgPool2D)(name)
    rank = 1 if isinstance(pool, (nn.MaxPool1d, nn.AvgPool1d)) else 2
    if pool.ceil_mode:
        raise UnsupportedLayerError(f"module {path!r} ({kind}): ceil_mode=True is not supported")
    size = _tuple(pool.kernel_size, rank)
    stride = _tuple(pool.stride if pool.stride is not None and pool.stride != [] else size, rank)
    pad = _tuple(pool.padding, rank)
    geometry = dict(pool_size=size, stride=stride, padding=tuple((p, p) for p in pad))
    if isinstance(pool, (nn.MaxPool1d, nn.MaxPool2d)):
        if any(d != 1 for d in _tuple(pool.dilation, rank)) or pool.return_indices:
            raise UnsupportedLayerError(f"module {path!r} ({kind}): dilation={pool.dilation}, return_indices="
                                        f"{pool.return_indices} are not supported (only dilation 1, no indices)")
        return (MaxPool1D if rank == 1 else MaxPool2D)(name, **geometry)
    if getattr(pool, "divisor_override", None) is not None:
        raise UnsupportedLayerError(f"module {path!r} ({kind}): divisor_override is not supported")
    count_pad = bool(pool.count_include_pad) and any(pad)
    return (AvgPool1D if rank == 1 else AvgPool2D)(name, count_pad=count_pad, **geometry)


def flatten_permutation(shape: tuple[int, ...]) -> np.ndarray:
    """Columns: IR feature ``i`` of a flattened channels-last ``shape`` is torch feature
    ``perm[i]`` of the same tensor flattened channels-first."""
    channels_first = np.arange(int(np.prod(shape))).reshape(shape[-1], *shape[:-1])
    return np.moveaxis(channels_first, 0, -1).reshape(-1)


# -- IR -> torch ------------------------------------------------------------------------------


def to_torch_modules(layer: Layer, dtype, in_channels: int) -> list[tuple[str, object]]:
    """``(name, module)`` pairs computing ``layer`` on channels-first tensors."""
    import torch

    nn = torch.nn
    rank = layer.rank
    if layer.kind in ("conv1d", "conv2d"):
        cls = nn.Conv1d if rank == 1 else nn.Conv2d
        weight = np.moveaxis(layer.weight, -1, 1)
        symmetric = all(a == b for a, b in layer.padding)
        conv = cls(in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                   padding=tuple(a for a, _ in layer.padding) if symmetric else 0,
                   groups=in_channels if layer.depthwise else 1, dtype=dtype)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor(weight, dtype=dtype))
            conv.bias.copy_(torch.tensor(layer.bias, dtype=dtype))
        if symmetric:
            return [(layer.name, conv)]
        flat = [v for pair in reversed(layer.padding) for v in pair]  # torch: last axis first
        pad = (nn.ZeroPad1d if rank == 1 else nn.ZeroPad2d)(tuple(flat))
        return [(f"{layer.name}_pad", pad), (layer.name, conv)]
    if layer.kind.startswith("globalavgpool"):
        return [(layer.name, (nn.AdaptiveAvgPool1d if rank == 1 else nn.AdaptiveAvgPool2d)(1))]
    if any(a != b for a, b in layer.padding):
        raise UnsupportedLayerError(f"layer {layer.name!r}: torch pooling pads both sides alike; got {layer.padding}")
    pad = tuple(a for a, _ in layer.padding)
    if layer.op == "max":
        return [(layer.name, (nn.MaxPool1d if rank == 1 else nn.MaxPool2d)(layer.pool_size, layer.stride, pad))]
    return [(layer.name, (nn.AvgPool1d if rank == 1 else nn.AvgPool2d)(layer.pool_size, layer.stride, pad,
                                                                      count_include_pad=layer.count_pad))]

