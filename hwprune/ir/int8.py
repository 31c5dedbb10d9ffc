"""IR layers of TFLite's int8 dialect (``hwprune.quant.int8`` holds its types and arithmetic).

The weighted layers reuse the ap_fixed layers' geometry (``weight`` is the filter matrix in
the same layout: Dense ``(out, in)``, Conv2D ``(out, kh, kw, in_per_group)``, a depthwise
conv one input channel per filter), so mac counts and the storage formats apply unchanged.
Their types: ``weight_t`` int8 (zero point 0, one float scale per output channel in
``weight_scale``), ``bias_t`` and ``accum_t`` int32, ``result_t`` the output's
``Int8Affine``. Each carries the requantization TFLM computes in its Prepare step, per
output channel: ``out_multiplier`` (Q31) and ``out_shift`` (exponent, > 0 shifts left), and the
fused activation's clamp ``act_min``/``act_max``.

Semantics (TFLM's reference kernels; ``in_zp`` is the input type's zero point): per
output, ``acc = bias + sum(w * (x - in_zp))`` over the taps inside the input (a padded tap
adds nothing), in int32; ``y = clamp(MultiplyByQuantizedMultiplier(acc, m, s) + out_zp,
act_min, act_max)``. Pooling: AVERAGE_POOL_2D sums the cells inside the input and divides
by their count rounding half away from zero; MAX_POOL_2D takes their maximum; both clamp
to ``act_min``/``act_max`` and keep the input's type. RESHAPE is the IR's own ``Reshape``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError, WeightError
from hwprune.ir.base import Layer, Shape
from hwprune.ir.layers import LAYER_KINDS, Dense
from hwprune.ir.spatial import _Conv, _Pool
from hwprune.quant.int8 import Int8Affine, IntType


class _Int8Weighted:
    """The checks shared by the int8 weighted layers (a mixin before the layer class)."""

    def _check_int8(self) -> None:
        where = f"layer {self.name!r}"
        out = self.weight.shape[0]
        for label, arr, lo, hi in (("weight", self.weight, -128, 127), ("bias", self.bias, -(1 << 31), (1 << 31) - 1)):
            if np.any(arr != np.round(arr)) or np.any(arr < lo) or np.any(arr > hi):
                raise WeightError(f"{where}: int8 {label} must hold integers in {lo}..{hi}")
        for label in ("weight_scale", "out_multiplier", "out_shift"):
            value = getattr(self, label)
            arr = np.asarray(value, dtype=np.float64 if label == "weight_scale" else np.int64)
            if arr.shape != (out,):
                raise ShapeError(f"{where}: {label} must hold one value per output channel ({out}), got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, label, arr)
        if not (-128 <= int(self.act_min) <= int(self.act_max) <= 127):
            raise ShapeError(f"{where}: activation clamp {self.act_min}..{self.act_max} is not inside int8")
        object.__setattr__(self, "act_min", int(self.act_min))
        object.__setattr__(self, "act_max", int(self.act_max))


@dataclass(frozen=True, eq=False)
class Int8Dense(_Int8Weighted, Dense):
    """TFLite FULLY_CONNECTED with int8 input, weights and output."""

    weight_scale: np.ndarray = None  # type: ignore[assignment]
    out_multiplier: np.ndarray = None  # type: ignore[assignment]
    out_shift: np.ndarray = None  # type: ignore[assignment]
    act_min: int = -128
    act_max: int = 127

    kind: ClassVar[str] = "int8_dense"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_int8()


@dataclass(frozen=True, eq=False)
class Int8Conv2D(_Int8Weighted, _Conv):
    """TFLite CONV_2D, or DEPTHWISE_CONV_2D with ``depthwise``; weight ``(out, kh, kw, in_per_group)``."""

    weight_scale: np.ndarray = None  # type: ignore[assignment]
    out_multiplier: np.ndarray = None  # type: ignore[assignment]
    out_shift: np.ndarray = None  # type: ignore[assignment]
    act_min: int = -128
    act_max: int = 127

    kind: ClassVar[str] = "int8_conv2d"
    rank: ClassVar[int] = 2
    weight_axes: ClassVar[tuple[str, ...]] = ("out", "kh", "kw", "in_per_group")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_int8()


@dataclass(frozen=True, eq=False)
class _Int8Pool(_Pool):
    act_min: int = -128
    act_max: int = 127

    rank: ClassVar[int] = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "act_min", int(self.act_min))
        object.__setattr__(self, "act_max", int(self.act_max))


@dataclass(frozen=True, eq=False)
class Int8AvgPool2D(_Int8Pool):
    """TFLite AVERAGE_POOL_2D (int8): divides by the cells inside the input."""

    kind: ClassVar[str] = "int8_avgpool2d"
    op: ClassVar[str] = "avg"
    count_pad: ClassVar[bool] = False


@dataclass(frozen=True, eq=False)
class Int8MaxPool2D(_Int8Pool):
    """TFLite MAX_POOL_2D (int8)."""

    kind: ClassVar[str] = "int8_maxpool2d"
    op: ClassVar[str] = "max"


INT8_KINDS = (Int8Dense, Int8Conv2D, Int8AvgPool2D, Int8MaxPool2D)
LAYER_KINDS.update({cls.kind: cls for cls in INT8_KINDS})


def int8_types(out: Int8Affine) -> dict[str, Optional[object]]:
    """The four types of an int8 weighted layer with output type ``out``."""
    return {"weight_t": IntType(8), "bias_t": IntType(32), "accum_t": IntType(32), "result_t": out}


def is_int8_graph(graph) -> bool:
    return isinstance(graph.input_t, Int8Affine)


__all__ = ["Int8Dense", "Int8Conv2D", "Int8AvgPool2D", "Int8MaxPool2D", "INT8_KINDS", "int8_types",
           "is_int8_graph"]
