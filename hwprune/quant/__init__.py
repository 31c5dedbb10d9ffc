"""Fixed-point types, post-training calibration and quantization-aware training."""

from hwprune.quant.fixed import Fixed, Overflow, Rounding, cast, from_grid, quantize, to_real

__all__ = ["Fixed", "Overflow", "Rounding", "cast", "from_grid", "quantize", "to_real"]
