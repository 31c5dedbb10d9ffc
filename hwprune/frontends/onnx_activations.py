"""ONNX activations -> the torch modules ``frontends.torch_activations`` maps to IR layers:
Sigmoid, Tanh, LeakyRelu (``alpha``, default 0.01), PRelu (a constant slope: one, or one per
channel) and HardSigmoid (``alpha`` and ``beta``, defaults 0.2 and 0.5: ``clip(alpha * x +
beta, 0, 1)``)."""

from __future__ import annotations

import numpy as np

from hwprune.frontends.onnx_graph import op
from hwprune.frontends.torch_activations import hard_sigmoid_module
from hwprune.frontends.torch_load import _torch


@op("Sigmoid")
def _sigmoid(node, attrs, ctx):
    return _torch().nn.Sigmoid()


@op("Tanh")
def _tanh(node, attrs, ctx):
    return _torch().nn.Tanh()


@op("LeakyRelu")
def _leaky_relu(node, attrs, ctx):
    return _torch().nn.LeakyReLU(float(attrs.get("alpha", 0.01)))


@op("HardSigmoid")
def _hard_sigmoid(node, attrs, ctx):
    return hard_sigmoid_module()(float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5)))


@op("PRelu")
def _prelu(node, attrs, ctx):
    slope = ctx.const(node, 1)
    if slope is None:
        raise ctx.fail(node, "the slope must be a constant")
    slope = np.asarray(slope, dtype=np.float64)
    # One slope per channel: ONNX broadcasts a (C, 1, 1) or (C,) slope against NC... inputs.
    per_channel = slope.reshape(-1) if slope.size == 1 or slope.shape[0] == slope.size else None
    if per_channel is None:
        raise ctx.fail(node, f"only one slope or one per channel is supported, got shape {slope.shape}")
    torch = _torch()
    prelu = torch.nn.PReLU(per_channel.size, dtype=torch.float64)
    with torch.no_grad():
        prelu.weight.copy_(torch.from_numpy(per_channel.copy()))
    return prelu
