"""IR layers that read two or more tensors: Add, Multiply, Concatenate.

Fixed-point semantics (hls4ml 1.3.0's ``nnet_merge.h``: ``res[i] = data1[i] + data2[i]``
in ap_fixed arithmetic, whose sum and product are exact, then one assignment to
``res_T``):

- **Add**: both operands aligned on the finer grid (``max`` of their fraction bits, a
  left shift, exact), summed exactly, then cast once to ``result_t``.
- **Multiply**: the exact product (fraction bits add up), then cast once to ``result_t``.
- **Concatenate**: each element cast from its operand's type to ``result_t``.

Operand shapes of Add and Multiply: equal, or one is a trailing part of the other
(``(C,)`` against ``(H, W, C)``): element ``i`` of the longer operand meets element
``i mod n`` of the shorter, as hls4ml's ``data2[ii % n_elem2]`` (a squeeze-excite
scale). Concatenate's ``axis`` counts the IR's channels-last axes without a batch axis
(``-1``: channels); every other axis must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError
from hwprune.ir.base import VARIADIC, Layer, Shape
from hwprune.ir.fixed import Fixed


def _broadcast(layer: Layer, shapes: tuple[Shape, ...]) -> Shape:
    a, b = (tuple(s) for s in shapes)
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    if longer[len(longer) - len(shorter):] != shorter:
        raise ShapeError(f"layer {layer.name!r}: {type(layer).__name__} operands {layer.inputs[0]!r} {a} and "
                         f"{layer.inputs[1]!r} {b} have mismatched shapes (equal, or one the trailing axes of the other)")
    return longer


@dataclass(frozen=True, eq=False)
class _Binary(Layer):
    result_t: Optional[Fixed] = None

    computes: ClassVar[bool] = True
    arity: ClassVar[int] = 2
    elementwise: ClassVar[bool] = True
    op: ClassVar[str] = ""

    def output_shape(self, *input_shapes: Shape) -> Shape:
        return _broadcast(self, input_shapes)


@dataclass(frozen=True, eq=False)
class Add(_Binary):
    """``y = result(a + b)``, the operands aligned exactly (see the module docstring)."""

    kind: ClassVar[str] = "add"
    op: ClassVar[str] = "+"


@dataclass(frozen=True, eq=False)
class Multiply(_Binary):
    """``y = result(a * b)`` with the exact product."""

    kind: ClassVar[str] = "multiply"
    op: ClassVar[str] = "*"


@dataclass(frozen=True, eq=False)
class Concatenate(Layer):
    """Operands joined along ``axis`` (channels-last IR axes), each cast to ``result_t``."""

    axis: int = -1
    result_t: Optional[Fixed] = None

    kind: ClassVar[str] = "concatenate"
    computes: ClassVar[bool] = True
    arity: ClassVar[int] = VARIADIC

    def resolved_axis(self, rank: int) -> int:
        axis = int(self.axis)
        if not -rank <= axis < rank:
            raise ShapeError(f"layer {self.name!r}: concatenation axis {axis} does not exist in a rank-{rank} tensor")
        return axis % rank

    def output_shape(self, *input_shapes: Shape) -> Shape:
        shapes = [tuple(s) for s in input_shapes]
        rank = len(shapes[0])
        axis = self.resolved_axis(rank)
        for name, shape in zip(self.inputs[1:], shapes[1:]):
            if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(shape, shapes[0])) if i != axis):
                raise ShapeError(f"layer {self.name!r}: operand {name!r} {shape} does not match {self.inputs[0]!r} "
                                 f"{shapes[0]} outside axis {self.axis}")
        out = list(shapes[0])
        out[axis] = int(np.sum([s[axis] for s in shapes]))
        return tuple(out)
