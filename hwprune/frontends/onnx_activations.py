"""ONNX handlers of the activations: Sigmoid, Tanh, Selu (the standard constants only),
LeakyRelu (``alpha``, default 0.01),
HardSigmoid (``alpha`` and ``beta``, defaults 0.2 and 0.5: ``clip(alpha * x + beta, 0, 1)``)
and PRelu (a constant slope: one, or one per channel). A SiLU exported as ``Mul(x,
Sigmoid(x))`` needs nothing more: the Mul of two computed tensors is an IR Multiply."""

from __future__ import annotations

import numpy as np

from hwprune.errors import UnsupportedLayerError
from hwprune.frontends.onnx_graph import op
from hwprune.ir.activations import SELU_ALPHA, SELU_LAMBDA, HardSigmoid, LeakyReLU, Selu, Sigmoid, Tanh


@op("Sigmoid")
def _sigmoid(node, attrs, ctx):
    return ctx.emit(node, Sigmoid("sigmoid"), [ctx.value(node)], sole=True)


@op("Tanh")
def _tanh(node, attrs, ctx):
    return ctx.emit(node, Tanh("tanh"), [ctx.value(node)], sole=True)


@op("Selu")
def _selu(node, attrs, ctx):
    # ONNX's defaults are the float32 roundings of SELU's constants; hls4ml's are fixed
    for key, value in (("alpha", SELU_ALPHA), ("gamma", SELU_LAMBDA)):
        given = float(attrs.get(key, np.float32(value)))
        if given != float(np.float32(value)):
            raise UnsupportedLayerError(f"node {node.name!r} (Selu): {key} = {given}; hwprune (as hls4ml) computes "
                                        f"SELU with its standard {key} {value} only")
    return ctx.emit(node, Selu("selu"), [ctx.value(node)], sole=True)


@op("LeakyRelu")
def _leaky_relu(node, attrs, ctx):
    alpha = float(attrs.get("alpha", 0.01))
    return ctx.emit(node, LeakyReLU("leaky_relu", alpha=np.array([alpha])), [ctx.value(node)], sole=True)


@op("HardSigmoid")
def _hard_sigmoid(node, attrs, ctx):
    layer = HardSigmoid("hard_sigmoid", slope=float(attrs.get("alpha", 0.2)), shift=float(attrs.get("beta", 0.5)))
    return ctx.emit(node, layer, [ctx.value(node)], sole=True)


@op("PRelu")
def _prelu(node, attrs, ctx):
    value = ctx.value(node)
    slope = ctx.const(node, 1)
    if slope is None:
        raise ctx.fail(node, "the slope must be a constant")
    dims = ctx.onnx_dims(value)
    try:  # ONNX broadcasts the slope against (N, *dims) from the right
        full = np.broadcast_to(np.asarray(slope, np.float64), (1, *dims))[0]
    except ValueError:
        raise ctx.fail(node, f"a slope of shape {np.shape(slope)} does not broadcast to (N, {dims})") from None
    # The channel axis as ONNX holds it: axis 1 of a channels-first tensor, the last of a channels-last one.
    axis = len(dims) - 1 if value.layout == "cl" else 0
    per_channel = np.moveaxis(full, axis, 0).reshape(full.shape[axis], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        raise ctx.fail(node, f"a slope of shape {np.shape(slope)} varies along a spatial axis; hwprune takes one "
                             "slope or one per channel")
    alpha = per_channel[:, 0]
    if np.all(alpha == alpha[0]):
        alpha = alpha[:1]
    elif value.perm is not None:  # IR feature i is ONNX feature perm[i]
        alpha = alpha[value.perm]
    return ctx.emit(node, LeakyReLU("prelu", alpha=alpha), [value], sole=True)
