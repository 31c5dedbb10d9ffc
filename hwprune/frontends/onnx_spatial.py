"""ONNX handlers of spatial ops: Conv, MaxPool, AveragePool, GlobalAveragePool, Pad, Resize.

Padding is explicit (``pads``) or ``auto_pad``: ``VALID`` is none, ``SAME_UPPER`` and
``SAME_LOWER`` pad so that the output has ``ceil(input / stride)`` positions, the odd cell at
the end (upper) or the beginning (lower), which needs the input's static shape. A conv
takes any padding (a Pad before it is folded into it), and ``group`` 1 or one group per
input channel (depthwise); pooling takes symmetric padding only, and its message names
``auto_pad``. ONNX is channels-first: an IR conv weight is ``(out, *kernel, in_per_group)``.
``Resize`` is read where it is nearest-neighbour upsampling by integer factors of the spatial
axes (an IR ``UpSample``): mode ``nearest`` with ``asymmetric`` coordinates and ``floor``, or
with ``half_pixel`` coordinates (for an integer factor ``k`` the source position of output
``i`` is ``i // k + ((i % k) + 0.5) / k - 0.5``, whose fraction never reaches one half, so
every rounding gives ``i // k``).
"""

from __future__ import annotations

import numpy as np

from hwprune.frontends.onnx_graph import op
from hwprune.ir.layers import (
    AvgPool1D, AvgPool2D, Conv1D, Conv2D, GlobalAvgPool1D, GlobalAvgPool2D, MaxPool1D, MaxPool2D, UpSample,
)


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


def _spatial_value(node, ctx, dims: int, plain: bool = True):
    value = ctx.value(node, 0, plain=plain)
    ir = ctx.ir_shape(value)
    if value.layout == "cf" and value.rank == dims + 2 and len(ir) == 1 and dims in (1, 2):  # (N, C, 1, 1) held as (C,)
        value = ctx.reshaped(node, value, (1,) * dims + (ir[0],)).but(affine=value.affine, pad=value.pad,
                                                                      unsqueezed=value.unsqueezed)
    if value.layout != "cf" or value.rank != dims + 2 or len(ctx.ir_shape(value)) != dims + 1:
        raise ctx.fail(node, f"it reads a tensor of shape (N, {', '.join(map(str, ctx.onnx_dims(value)))}); "
                             f"a {dims}-D {node.op_type} reads (N, C, {'L' if dims == 1 else 'H, W'})")
    return value


def _fold_before_conv(node, ctx, affine, weight, bias, padding, depthwise):
    """conv(scale * x + shift): exact when no zero padding meets the shifted values."""
    where, scale, shift = affine
    if any(p != (0, 0) for p in padding) and np.any(shift != 0):
        raise ctx.fail(node, f"the BatchNormalization {where} before it cannot fold into this padded conv (its zero "
                             "padding would not be shifted); fold it into the layer before it")
    out = weight.shape[0]
    per_filter = (np.arange(out) // (out // scale.size)) if depthwise else None
    scale_of = scale[per_filter][:, None] if depthwise else scale[None, :]  # (out or 1, in_per_group)
    shift_of = shift[per_filter][:, None] if depthwise else shift[None, :]
    taps = weight.reshape(out, -1, weight.shape[-1])
    bias = bias + (taps * shift_of[:, None, :]).sum(axis=(1, 2))
    weight = weight * scale_of.reshape(scale_of.shape[0], *([1] * (weight.ndim - 2)), -1)
    return weight, bias


@op("Conv")
def _conv(node, attrs, ctx):
    weight = np.asarray(ctx.const(node, 1), np.float64)
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D convolutions are supported, got {dims}-D")
    value = _spatial_value(node, ctx, dims, plain=False)
    if value.unsqueezed:
        ctx.require_plain(node, value)
    if any(int(d) != 1 for d in attrs.get("dilations", [1] * dims)):
        raise ctx.fail(node, f"dilations={list(attrs['dilations'])} is not supported; hwprune supports dilation 1")
    groups, channels = int(attrs.get("group", 1)), ctx.ir_shape(value)[-1]
    depthwise = groups > 1
    if depthwise and (groups != channels or weight.shape[1] != 1):
        raise ctx.fail(node, f"group={groups} is not supported; hwprune supports group=1 and depthwise "
                             f"group={channels} (one per input channel)")
    begin, end = resolve_pads(node, attrs, ctx, weight.shape[2:], dims)
    padding = tuple(zip(begin, end))
    if value.pad is not None:
        padding = tuple((a + c, b + d) for (a, b), (c, d) in zip(padding, value.pad))
    bias = ctx.const(node, 2)
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64)
    weight = np.moveaxis(weight, 1, -1)  # (out, in/groups, *k) -> (out, *k, in/groups)
    if value.affine is not None and any(p != (0, 0) for p in padding) and np.any(value.affine[2] != 0):
        # zero padding would not be shifted: the norm stays a layer of its own
        value = ctx.normalize(value, ctx._name(node, "batchnorm", "_bn"))
    if value.affine is not None:
        weight, bias = _fold_before_conv(node, ctx, value.affine, weight, bias, padding, depthwise)
    cls = Conv1D if dims == 1 else Conv2D
    layer = cls("conv", weight, bias, stride=tuple(attrs.get("strides", [1] * dims)), padding=padding,
                depthwise=depthwise)
    return ctx.emit(node, layer, [value.but(affine=None, pad=None)], sole=True)


@op("MaxPool", "AveragePool")
def _pool(node, attrs, ctx):
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    dims = len(kernel)
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D pooling is supported, got {dims}-D")
    value = _spatial_value(node, ctx, dims)
    begin, end = resolve_pads(node, attrs, ctx, kernel, dims)
    if begin != end:
        raise ctx.fail(node, f"only symmetric padding is supported for pooling, got {_describe(attrs, begin, end)}")
    if attrs.get("ceil_mode", 0):
        raise ctx.fail(node, "ceil_mode=1 is not supported")
    if any(int(d) != 1 for d in attrs.get("dilations", [1] * dims)):
        raise ctx.fail(node, f"dilations={list(attrs['dilations'])} is not supported")
    geometry = dict(pool_size=kernel, stride=tuple(attrs.get("strides", kernel)),
                    padding=tuple((b, b) for b in begin))
    if node.op_type == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            raise ctx.fail(node, "its Indices output is not supported")
        return ctx.emit(node, (MaxPool1D if dims == 1 else MaxPool2D)("maxpool", **geometry), [value], sole=True)
    count_pad = bool(attrs.get("count_include_pad", 0)) and any(begin)
    layer = (AvgPool1D if dims == 1 else AvgPool2D)("avgpool", count_pad=count_pad, **geometry)
    return ctx.emit(node, layer, [value], sole=True)


@op("Pad")
def _pad(node, attrs, ctx):
    """Zero padding (old exporters put one before pooling, often of nothing): dropped when
    empty, else folded into the Conv right after it."""
    value = ctx.value(node)
    mode = attrs.get("mode", b"constant")
    pads = attrs.get("pads")
    if pads is None:
        pads = ctx.const(node, 1)
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    fill = attrs.get("value", 0.0) if "value" in attrs else (ctx.const(node, 2) if len(node.input) > 2 else 0.0)
    if mode not in (b"constant", "constant") or float(np.asarray(fill).reshape(-1)[0] if np.size(fill) else 0.0) != 0.0:
        raise ctx.fail(node, "only zero padding is supported")
    if not any(pads):
        return value.but(sole=ctx.sole_reader(node, value))
    rank = len(pads) // 2
    begin, end = pads[:rank], pads[rank:]
    if rank not in (3, 4) or begin[:2] != [0, 0] or end[:2] != [0, 0] or min(pads) < 0:
        raise ctx.fail(node, f"only zero padding of the spatial axes is supported, got pads={pads}")
    _spatial_value(node, ctx, rank - 2)
    return value.but(pad=tuple(zip(begin[2:], end[2:])), sole=ctx.sole_reader(node, value))


@op("GlobalAveragePool")
def _global_pool(node, attrs, ctx):
    value = ctx.value(node)
    dims = value.rank - 2
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D pooling is supported, got {dims}-D")
    value = _spatial_value(node, ctx, dims)
    return ctx.emit(node, (GlobalAvgPool1D if dims == 1 else GlobalAvgPool2D)("globalavgpool"), [value], sole=True)


@op("ReduceMean")
def _reduce_mean(node, attrs, ctx):
    """The mean over every spatial axis (torch.export writes global average pooling so)."""
    value = ctx.value(node)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node, 1)
    axes = None if axes is None else sorted(int(a) % value.rank for a in np.asarray(axes).reshape(-1))
    dims = value.rank - 2
    if value.layout != "cf" or dims not in (1, 2) or axes != list(range(2, value.rank)):
        raise ctx.fail(node, f"axes={axes}: only the mean over every spatial axis of a (N, C, L) or (N, C, H, W) "
                             "tensor (global average pooling) is supported")
    value = _spatial_value(node, ctx, dims)
    layer = (GlobalAvgPool1D if dims == 1 else GlobalAvgPool2D)("globalavgpool")
    if attrs.get("keepdims", 1):
        return ctx.emit(node, layer, [value], sole=True)
    return ctx.emit(node, layer, [value], layout="flat", rank=2, sole=True)


def _text(attrs, key: str, default: str) -> str:
    value = attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else str(value)


@op("Resize", "Upsample")
def _resize(node, attrs, ctx):
    value = ctx.value(node)
    mode, coordinates = _text(attrs, "mode", "nearest"), _text(attrs, "coordinate_transformation_mode", "half_pixel")
    rounding = _text(attrs, "nearest_mode", "round_prefer_floor")
    if mode != "nearest" or not (coordinates in ("half_pixel", "pytorch_half_pixel")
                                 or (coordinates == "asymmetric" and rounding == "floor")):
        raise ctx.fail(node, f"mode={mode}, coordinate_transformation_mode={coordinates}, nearest_mode={rounding}: "
                             "hwprune reads nearest upsampling only (asymmetric with floor, or half_pixel)")
    dims = (1, *ctx.onnx_dims(value))
    scales = None
    if node.op_type == "Upsample" or len(node.input) == 2:  # opset 9 Upsample, opset 10 Resize: (X, scales)
        scales = ctx.const(node, 1)
    else:
        scales = ctx.const(node, 2) if len(node.input) > 2 and node.input[2] else None
        if (scales is None or np.size(scales) == 0) and len(node.input) > 3 and node.input[3]:
            scales = np.asarray(ctx.const(node, 3), np.float64) / np.asarray(dims, np.float64)
    scales = np.asarray(scales if scales is not None else [], np.float64).reshape(-1)
    spatial = list(range(1, len(dims) - 1)) if value.layout == "cl" else list(range(2, len(dims)))
    if (scales.size != len(dims) or value.layout == "flat" or not 1 <= len(spatial) <= 2
            or any(scales[a] != 1 for a in range(len(dims)) if a not in spatial)
            or any(scales[a] != int(scales[a]) or scales[a] < 1 for a in spatial)):
        raise ctx.fail(node, f"scales {scales.tolist()} of a tensor of shape {dims}: hwprune reads integer upsampling "
                             "factors of the 1 or 2 spatial axes only")
    if value.layout == "cf" and len(ctx.ir_shape(value)) != len(spatial) + 1:
        value = _spatial_value(node, ctx, len(spatial))
    return ctx.emit(node, UpSample("upsample", size=tuple(int(scales[a]) for a in spatial)), [value], sole=True)
