"""ONNX handlers of qonnx's channels-last domain (``qonnx.custom_op.channels_last``): Conv,
MaxPool and BatchNormalization on ``(N, *spatial, C)`` tensors, which hls4ml's QONNX flow
and qonnx's ``ConvertToChannelsLastAndClean`` write.

qonnx runs each of them as the standard op on its input transposed to channels-first (the
Conv weight too, ``(out, *kernel, in / group)`` -> ``(out, in / group, *kernel)``) and
transposes the output back. The IR is channels-last and its conv weight is
``(out, *kernel, in / group)``: the values, the weight and ``pads`` (``[*begin, *end]`` per
spatial axis, as ONNX) map unchanged, and the output stays channels-last. An op of the
domain that is not one of these three is refused with the node named
(``onnx_graph.handler_of``).
"""

from __future__ import annotations

import numpy as np

from hwprune.frontends.onnx_graph import CHANNELS_LAST, op
from hwprune.ir.activations import BatchNorm
from hwprune.ir.layers import Conv1D, Conv2D, MaxPool1D, MaxPool2D


def _channels_last_value(node, ctx, dims: int):
    value = ctx.value(node)
    if value.layout != "cl" or value.rank != dims + 2 or len(ctx.ir_shape(value)) != dims + 1:
        raise ctx.fail(node, f"it reads a tensor of shape (N, {', '.join(map(str, ctx.onnx_dims(value)))}) held "
                             f"{'channels-last' if value.layout == 'cl' else 'channels-first'}; a {dims}-D "
                             f"channels-last {node.op_type} reads (N, {'L' if dims == 1 else 'H, W'}, C)")
    return value


def _geometry(node, attrs, ctx, dims: int) -> tuple[tuple, tuple]:
    if any(int(d) != 1 for d in attrs.get("dilations", [1] * dims)):
        raise ctx.fail(node, f"dilations={list(attrs['dilations'])} is not supported; hwprune supports dilation 1")
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * dims))]
    if len(pads) != 2 * dims or min(pads) < 0:
        raise ctx.fail(node, f"pads={pads} is not {2 * dims} non-negative values")
    return tuple(zip(pads[:dims], pads[dims:])), tuple(int(s) for s in attrs.get("strides", [1] * dims))


@op("Conv", domain=CHANNELS_LAST)
def _conv(node, attrs, ctx):
    weight = np.asarray(ctx.const(node, 1), np.float64)  # (out, *kernel, in / group): the IR's layout
    dims = weight.ndim - 2
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D convolutions are supported, got {dims}-D")
    value = _channels_last_value(node, ctx, dims)
    padding, stride = _geometry(node, attrs, ctx, dims)
    groups, channels = int(attrs.get("group", 1)), ctx.ir_shape(value)[-1]
    depthwise = groups > 1
    if depthwise and (groups != channels or weight.shape[-1] != 1):
        raise ctx.fail(node, f"group={groups} is not supported; hwprune supports group=1 and depthwise "
                             f"group={channels} (one per input channel)")
    bias = ctx.const(node, 2)
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64).reshape(-1)
    layer = (Conv1D if dims == 1 else Conv2D)("conv", weight, bias, stride=stride, padding=padding,
                                              depthwise=depthwise)
    return ctx.emit(node, layer, [value], sole=True)


@op("MaxPool", domain=CHANNELS_LAST)
def _maxpool(node, attrs, ctx):
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    dims = len(kernel)
    if dims not in (1, 2):
        raise ctx.fail(node, f"only 1-D and 2-D pooling is supported, got {dims}-D")
    value = _channels_last_value(node, ctx, dims)
    padding, stride = _geometry(node, attrs, ctx, dims)
    if any(begin != end for begin, end in padding):
        raise ctx.fail(node, f"only symmetric padding is supported for pooling, got pads={list(attrs['pads'])}")
    if attrs.get("ceil_mode", 0):
        raise ctx.fail(node, "ceil_mode=1 is not supported")
    if len(node.output) > 1 and node.output[1]:
        raise ctx.fail(node, "its Indices output is not supported")
    layer = (MaxPool1D if dims == 1 else MaxPool2D)("maxpool", pool_size=kernel,
                                                    stride=tuple(attrs.get("strides", kernel)), padding=padding)
    return ctx.emit(node, layer, [value], sole=True)


@op("BatchNormalization", domain=CHANNELS_LAST)
def _batchnorm(node, attrs, ctx):
    """An inference BatchNorm over the last axis: a per-channel affine layer of its own."""
    value = ctx.value(node)
    if value.layout != "cl":
        raise ctx.fail(node, "it reads a tensor held channels-first; the channels-last BatchNormalization reads "
                             "(N, ..., C)")
    gamma, beta, mean, var = (np.asarray(ctx.const(node, i), np.float64).reshape(-1) for i in range(1, 5))
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    return ctx.emit(node, BatchNorm("batchnorm", scale=scale, bias=beta - mean * scale), [value], sole=True)
