"""IR layers of TFLite's int8 dialect (``hwprune.ir.int8_types`` holds its types and arithmetic).

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
ADD (``Int8Add``) of two same-shape tensors is TFLM's ``reference_integer_ops::Add``: each
operand ``(x - zp) << left_shift`` scaled by its own multiplier (below one), the two summed,
the sum scaled by the output multiplier, plus the output zero point, clamped; the operands'
zero points come from their types, so only the multipliers and shifts are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError, WeightError
from hwprune.ir.base import Layer, Shape
from hwprune.ir.layers import LAYER_KINDS, Dense
from hwprune.ir.spatial import _Conv, _Pool
from hwprune.ir.int8_types import AddParams, Int8Affine, IntType


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


@dataclass(frozen=True, eq=False)
class Int8Add(Layer):
    """TFLite ADD (int8) of two tensors of one shape; the parameters are ``ir.int8_types.add_params``'."""

    result_t: Optional[Int8Affine] = None
    left_shift: int = 20
    in1_multiplier: int = 0
    in1_shift: int = 0
    in2_multiplier: int = 0
    in2_shift: int = 0
    out_multiplier: int = 0
    out_shift: int = 0
    act_min: int = -128
    act_max: int = 127

    kind: ClassVar[str] = "int8_add"
    computes: ClassVar[bool] = True
    arity: ClassVar[int] = 2
    elementwise: ClassVar[bool] = True

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        for label in ("left_shift", "in1_multiplier", "in1_shift", "in2_multiplier", "in2_shift", "out_multiplier",
                      "out_shift", "act_min", "act_max"):
            object.__setattr__(self, label, int(getattr(self, label)))
        if not 0 <= self.left_shift <= 23:  # (x - zp) of int8 spans 9 bits: the shifted value stays in int32
            raise ShapeError(f"{where}: left_shift {self.left_shift} is outside 0..23")
        for label in ("in1", "in2", "out"):
            m, e = getattr(self, f"{label}_multiplier"), getattr(self, f"{label}_shift")
            if not 0 <= m < (1 << 31) or not -31 <= e <= 0:
                raise ShapeError(f"{where}: {label} multiplier {m} (Q31) and shift {e} (-31..0) are out of range")
        if not (-128 <= self.act_min <= self.act_max <= 127):
            raise ShapeError(f"{where}: activation clamp {self.act_min}..{self.act_max} is not inside int8")

    @classmethod
    def from_params(cls, name: str, p, result_t: Int8Affine, **kwargs) -> "Int8Add":
        """The layer of an ``AddParams`` (its offsets are the operand and output types' zero points)."""
        return cls(name, result_t=result_t, left_shift=p.left_shift, in1_multiplier=p.input1_multiplier,
                   in1_shift=p.input1_shift, in2_multiplier=p.input2_multiplier, in2_shift=p.input2_shift,
                   out_multiplier=p.output_multiplier, out_shift=p.output_shift, act_min=p.act_min,
                   act_max=p.act_max, **kwargs)

    def params(self, in1: Int8Affine, in2: Int8Affine) -> AddParams:
        """The kernel's parameters once the operands' types are known."""
        return AddParams(-in1.zero_point, -in2.zero_point, self.left_shift, self.in1_multiplier, self.in1_shift,
                         self.in2_multiplier, self.in2_shift, self.out_multiplier, self.out_shift,
                         self.result_t.zero_point, self.act_min, self.act_max)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        a, b = (tuple(s) for s in input_shapes)
        if a != b:
            raise ShapeError(f"layer {self.name!r}: int8 ADD operands {self.inputs[0]!r} {a} and {self.inputs[1]!r} "
                             f"{b} must have one shape (broadcasting is not supported)")
        return a


INT8_KINDS = (Int8Dense, Int8Conv2D, Int8AvgPool2D, Int8MaxPool2D, Int8Add)
LAYER_KINDS.update({cls.kind: cls for cls in INT8_KINDS})


def int8_types(out: Int8Affine) -> dict[str, Optional[object]]:
    """The four types of an int8 weighted layer with output type ``out``."""
    return {"weight_t": IntType(8), "bias_t": IntType(32), "accum_t": IntType(32), "result_t": out}


def is_int8_graph(graph) -> bool:
    return isinstance(graph.input_t, Int8Affine)


__all__ = ["Int8Dense", "Int8Conv2D", "Int8AvgPool2D", "Int8MaxPool2D", "Int8Add", "INT8_KINDS", "int8_types",
           "is_int8_graph"]
