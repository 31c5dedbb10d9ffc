"""ONNX handlers of spatial ops: Conv, MaxPool, AveragePool, GlobalAveragePool, Pad.

Padding is explicit (``pads``) or ``auto_pad``: ``VALID`` is none, ``SAME_UPPER`` and
``SAME_LOWER`` pad so that the output has ``ceil(input / stride)`` positions, the odd cell at
the end (upper) or the beginning (lower), which needs the input's static shape. A conv
takes any padding (an asymmetric one becomes a ZeroPad that ``from_torch`` folds into it);
pooling takes symmetric padding only, and its message names ``auto_pad``.
"""

from __future__ import annotations

import numpy as np

from hwprune.frontends.onnx_graph import op
from hwprune.frontends.torch_load import _torch


def _t(array: np.ndarray):
    return _torch().from_numpy(np.array(array, dtype=np.float64))


def _auto_pad(attrs) -> str:
    value = attrs.get("auto_pad", b"NOTSET")
    return value.decode() if isinstance(value, bytes) else str(value)


def resolve_pads(node, attrs, ctx, kernel, dims: int) -> tuple[list[int], list[int]]:
    """(begin, end) pads per spatial axis, from ``pads`` or ``auto_pad``."""
    mode = _auto_pad(attrs)
    if mode == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0] * (2 * dims))]
        return pads[:dims], pads[dims:]
    if mode == "VALID":
        return [0] * dims, [0] * dims
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(node, f"auto_pad={mode} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    shape = ctx.shape(node)
    if shape is None or len(shape) != dims + 2 or any(d is None for d in shape[2:]):
        raise ctx.fail(node, f"auto_pad={mode} needs the input's spatial shape, which the file does not fix "
                             f"(got {shape})")
    strides = list(attrs.get("strides", [1] * dims))
    dilations = list(attrs.get("dilations", [1] * dims))
    begin, end = [], []
    for size, k, s, d in zip(shape[2:], kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return begin, end


def _describe(attrs, begin, end) -> str:
    mode = _auto_pad(attrs)
    pads = [*begin, *end]
    return f"pads={pads}" if mode == "NOTSET" else f"auto_pad={mode} (pads {pads})"


@op("Conv")
def _conv(node, attrs, ctx):
    torch = _torch()
    weight = ctx.const(node, 1)
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D convolutions are supported, got {dims}-D")
    groups = int(attrs.get("group", 1))
    begin, end = resolve_pads(node, attrs, ctx, weight.shape[2:], dims)
    symmetric = begin == end
    cls = torch.nn.Conv1d if dims == 1 else torch.nn.Conv2d
    bias = ctx.const(node, 2)
    conv = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
               stride=tuple(attrs.get("strides", [1] * dims)), padding=tuple(begin) if symmetric else 0,
               dilation=tuple(attrs.get("dilations", [1] * dims)), groups=groups, bias=True, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(_t(weight))
        conv.bias.copy_(_t(np.zeros(weight.shape[0]) if bias is None else bias))
    ctx.bias_pending = True  # tf2onnx may add the bias in an Add of its own
    if symmetric:
        return conv
    nn = torch.nn
    pad = nn.ZeroPad1d((begin[0], end[0])) if dims == 1 else nn.ZeroPad2d((begin[1], end[1], begin[0], end[0]))
    return [pad, conv]


@op("MaxPool", "AveragePool")
def _pool(node, attrs, ctx):
    nn = _torch().nn
    kernel = tuple(attrs["kernel_shape"])
    dims = len(kernel)
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D pooling is supported, got {dims}-D")
    begin, end = resolve_pads(node, attrs, ctx, kernel, dims)
    if begin != end:
        raise ctx.fail(node, f"only symmetric padding is supported for pooling, got {_describe(attrs, begin, end)}")
    common = dict(stride=tuple(attrs.get("strides", kernel)), padding=tuple(begin),
                  ceil_mode=bool(attrs.get("ceil_mode", 0)))
    if node.op_type == "MaxPool":
        return (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(kernel, **common)
    return (nn.AvgPool1d if dims == 1 else nn.AvgPool2d)(
        kernel, count_include_pad=bool(attrs.get("count_include_pad", 0)), **common)


@op("Pad")
def _pad(node, attrs, ctx):
    """Zero padding (old exporters put one before pooling, often of nothing): dropped when
    empty, else a ZeroPad layer that ``from_torch`` folds into the convolution after it."""
    mode = attrs.get("mode", b"constant")
    pads = attrs.get("pads")
    if pads is None:
        pads = ctx.const(node, 1)
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    value = attrs.get("value", 0.0) if "value" in attrs else (ctx.const(node, 2) if len(node.input) > 2 else 0.0)
    if mode not in (b"constant", "constant") or float(np.asarray(value).reshape(-1)[0] if np.size(value) else 0.0) != 0.0:
        raise ctx.fail(node, "only zero padding is supported")
    if not any(pads):
        return None
    rank = len(pads) // 2
    begin, end = pads[:rank], pads[rank:]
    if rank not in (3, 4) or begin[:2] != [0, 0] or end[:2] != [0, 0]:
        raise ctx.fail(node, f"only padding of the spatial axes is supported, got pads={pads}")
    nn = _torch().nn
    if rank == 3:
        return nn.ZeroPad1d((begin[2], end[2]))
    return nn.ZeroPad2d((begin[3], end[3], begin[2], end[2]))


@op("GlobalAveragePool")
def _global_pool(node, attrs, ctx):
    nn = _torch().nn
    return nn.AdaptiveAvgPool1d(1) if ctx.rank(node) == 3 else nn.AdaptiveAvgPool2d(1)
