"""The fixed-point arithmetic that quantization-aware layers share.

``fake_quant`` moves values onto a type's grid (straight-through gradient);
``QuantizedWeights`` is a weighted layer's forward pass on fixed-point grids, mixed into
``QATLinear`` (``qat.model``) and the QAT convs (``qat.spatial``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwprune.errors import OptionError
from hwprune.prune.masks import WeightMask, module_mask
from hwprune.ir.fixed import MAX_WIDTH, Fixed, Overflow, Rounding, quantize, to_real

# float64 carries integers exactly up to 2**53: the widest accumulator QAT can sum exactly.
EXACT_BITS = 53


class FakeQuant(torch.autograd.Function):
    """``FakeQuant.apply(x, t)``: ``x`` moved onto the grid of ``t`` (its rounding and
    overflow) by ``ir.fixed.quantize``; the result has ``x``'s dtype, so pass float64
    for types wider than float32's 24-bit significand. Backward: straight through."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, t: Fixed) -> torch.Tensor:
        values = x.detach().cpu().double().numpy()
        out = torch.from_numpy(to_real(quantize(values, t), t)).to(dtype=x.dtype, device=x.device)
        if t.overflow is Overflow.SAT:
            ctx.save_for_backward((x >= t.min_value) & (x <= t.max_value))
        else:
            ctx.save_for_backward(None)
        return out

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return (grad if inside is None else grad * inside), None


def fake_quant(x: torch.Tensor, t: Fixed) -> torch.Tensor:
    return FakeQuant.apply(x, t)


class QuantizedWeights:
    """The fixed-point arithmetic of a weighted QAT layer, mixed into the torch class
    (``nn.Linear`` here, the convs in ``qat_spatial``): weights on ``weight_t``, biases on
    ``bias_t``, the sum in float64 (exact while every partial sum stays below 2**53, which
    ``forward`` checks), the sum cast to ``result_t``. The class supplies ``_sum(x, w, b)``.
    """

    input_t: Fixed
    weight_t: Fixed
    bias_t: Fixed
    result_t: Fixed

    def set_types(self, input_t: Fixed, weight_t: Fixed, bias_t: Fixed, result_t: Fixed) -> None:
        self.input_t, self.weight_t, self.bias_t, self.result_t = input_t, weight_t, bias_t, result_t

    @property
    def product_frac(self) -> int:
        return self.input_t.frac_bits + self.weight_t.frac_bits

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant(self.weight.double(), self.weight_t)

    def quantized_bias(self) -> torch.Tensor:
        bias = self.bias if self.bias is not None else torch.zeros(self.weight.shape[0], dtype=torch.float64)
        return fake_quant(bias.double(), self.bias_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.quantized_weight(), self.quantized_bias()
        if self.bias_t.frac_bits > self.product_frac:
            # The accumulator has the product's fraction bits; a finer bias is truncated on entry.
            b = fake_quant(b, Fixed(MAX_WIDTH, MAX_WIDTH - self.product_frac, True, Rounding.TRN, Overflow.WRAP))
        with torch.no_grad():
            x_abs = max(-self.input_t.min_value, self.input_t.max_value)
            bound = float((b.abs() + x_abs * w.abs().reshape(w.shape[0], -1).sum(dim=1)).max()) if len(b) else 0.0
        if math.ldexp(bound, self.product_frac) >= 2.0 ** EXACT_BITS:
            raise OptionError(
                f"QAT {type(self).__name__} {self.extra_repr().split(',')[0]}: the accumulator would need more than "
                f"{EXACT_BITS} bits, beyond exact float64 sums; use fewer weight or activation bits")
        return fake_quant(self._sum(x.double(), w, b), self.result_t).to(x.dtype)

    def extra_repr(self) -> str:
        types = f", weight={self.weight_t}, bias={self.bias_t}, result={self.result_t}" if hasattr(self, "result_t") else ""
        return super().extra_repr() + types


def carry_over(old, new, dtype):
    """``new`` (a rebuilt Linear or conv of the same shape) with ``old``'s unmasked
    weights, bias and mask; returns ``new``."""
    mask = module_mask(old)
    with torch.no_grad():
        new.weight.copy_(old.weight if mask is None else old.parametrizations.weight.original)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    if mask is not None:
        parametrize.register_parametrization(new, "weight", WeightMask(mask.to(dtype)))
    return new


class FakeQuantize(nn.Module):
    """Quantize a tensor to a fixed type (the model input); ``shape`` is one input's shape."""

    def __init__(self, t: Fixed, shape: tuple = ()) -> None:
        super().__init__()
        self.t = t
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x.double(), self.t).to(x.dtype)

    def extra_repr(self) -> str:
        return str(self.t)


class QATLinear(QuantizedWeights, nn.Linear):
    """A Linear computing ``result(sum(x * weight) + bias)`` on fixed-point grids.

    Still an ``nn.Linear``: masks attach to it and the pruning code finds it.
    """

    def _sum(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return x @ w.T + b


class QATReLU(nn.ReLU):
    """``result(max(x, 0))``, as the reference's ReLU kernel."""

    result_t: Fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(torch.relu(x).double(), self.result_t).to(x.dtype)

    def extra_repr(self) -> str:
        return f"result={self.result_t}" if hasattr(self, "result_t") else ""
