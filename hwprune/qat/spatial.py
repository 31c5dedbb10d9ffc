"""Quantization-aware conv and pooling modules (``qat.model`` builds models with them).

``QATConv1d``/``QATConv2d`` are what ``QATLinear`` is for Linear: weights on ``weight_t``,
biases on ``bias_t``, the convolution summed in float64 (exact: every partial sum is a
multiple of the product's LSB below 2**53, checked), the sum cast to ``result_t``. Taps on
zero padding add exact zeros, so this is the integer reference's conv.

``QATPool`` wraps a pooling module: its forward value is the integer reference's kernel on
the input's integers (hls4ml's accumulate-then-truncating-divide, bit for bit), its
gradient the float pooling's (straight through).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hwprune.frontends.torch_spatial import pool_layer
from hwprune.ir.fixed import Fixed, quantize, to_real
from hwprune.qat.core import QuantizedWeights, carry_over
from hwprune.reference import KERNELS
POOL_TYPES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
PAD_TYPES = (nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)


class _QATConv(QuantizedWeights):
    """Shared by QATConv1d and QATConv2d: the conv's own forward sums the quantized values."""

    def _sum(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, w, b)


class QATConv1d(_QATConv, nn.Conv1d):
    pass


class QATConv2d(_QATConv, nn.Conv2d):
    pass


def rebuilt_conv(old, cls, dtype=None):
    """A ``cls`` conv with ``old``'s geometry, unmasked weights, bias and mask."""
    dtype = dtype or old.weight.dtype
    new = cls(old.in_channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
              dilation=old.dilation, groups=old.groups, bias=old.bias is not None, padding_mode=old.padding_mode,
              dtype=dtype)
    return carry_over(old, new, dtype)


def qat_conv_class(conv):
    return QATConv1d if isinstance(conv, nn.Conv1d) else QATConv2d


def plain_conv_class(conv):
    return nn.Conv1d if isinstance(conv, nn.Conv1d) else nn.Conv2d


class QATPool(nn.Module):
    """A pooling module whose value is the integer reference's (see the module doc)."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "pool", pool)  # not a child: the model stays a chain of leaves
        self.layer = pool_layer("pool", pool, "pool")

    def set_types(self, input_t: Fixed, accum_t: Fixed, result_t: Fixed) -> None:
        self.input_t = input_t
        self.layer = self.layer.with_(accum_t=accum_t, result_t=result_t)

    @property
    def accum_t(self) -> Fixed:
        return self.layer.accum_t

    @property
    def result_t(self) -> Fixed:
        return self.layer.result_t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)
        values = x.detach().cpu().double().numpy()
        x_int = np.moveaxis(quantize(values, self.input_t), 1, -1)  # on the grid already: exact
        exact = KERNELS[self.layer.kind](self.layer, x_int, self.input_t)
        exact = to_real(np.moveaxis(exact, -1, 1) if exact.ndim > 2 else exact, self.result_t)
        exact = torch.from_numpy(exact.reshape(y.shape)).to(dtype=y.dtype, device=y.device)
        return y + (exact - y).detach()

    def extra_repr(self) -> str:
        return f"{self.pool!r}" + (f", accum={self.accum_t}, result={self.result_t}" if self.layer.accum_t else "")
