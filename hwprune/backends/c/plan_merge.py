"""What the generated C computes for Add, Multiply, Concatenate and Clip (``plan.plan_model``
calls it); the arithmetic is ``reference.merge``'s, in the C integer it fits.

- Add: each operand scaled onto the common grid by a multiplication (never a shift of a
  negative value), the exact sum cast once to ``result_t``.
- Multiply: the exact product cast once. Concatenate: each element cast from its operand's
  type. Clip: the integer clamp bounds of ``reference.merge.clip_bounds``, then the cast.
  UpSample: each output element the cast of the input element at ``i // size`` per spatial axis.
- A shorter operand (``(C,)`` against ``(H, W, C)``) is read at ``i % n``, as hls4ml does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwprune.backends.c.cast import Cast
from hwprune.errors import ModelError
from hwprune.ir.layers import Layer
from hwprune.ir.fixed import Fixed
from hwprune.reference.merge import add_grid, clip_bounds, product_bits

INT32_MAX = (1 << 31) - 1


def _magnitude(t: Fixed) -> int:
    return max(-t.min_int, t.max_int)


@dataclass(frozen=True)
class MergeArithmetic:
    bits: int  # 32 or 64: the C integer every value is formed in
    casts: tuple  # Cast per operand (Concatenate) or one for the result
    scales: tuple[int, ...] = ()  # Add: each operand times this lands on the common grid
    sizes: tuple[int, ...] = ()  # elements of each operand (Add/Multiply: i % size)
    outer: int = 1  # Concatenate: blocks before the axis
    inner: tuple[int, ...] = ()  # Concatenate: each operand's elements per block
    lo: int = 0  # Clip's bounds on the input's grid
    hi: int = 0
    in_shape: tuple[int, ...] = ()  # UpSample: the input's (*spatial, C) and the factors
    factors: tuple[int, ...] = ()

    @property
    def c_int(self) -> str:
        return f"int{self.bits}_t"


def merge_arithmetic(layer: Layer, in_shapes, in_types: tuple[Fixed, ...], out_shape) -> MergeArithmetic:
    out_t = layer.result_t
    sizes = tuple(int(np.prod(s)) for s in in_shapes)
    fits32 = lambda *m: max(m) <= INT32_MAX  # noqa: E731
    if layer.kind == "add":
        frac, need = add_grid(list(in_types))
        if need > 63:
            raise ModelError(f"layer {layer.name!r}: adding {in_types[0]} and {in_types[1]} needs {need} bits in C")
        bits = 32 if need <= 31 and fits32(_magnitude(out_t)) else 64
        scales = tuple(1 << (frac - t.frac_bits) for t in in_types)
        return MergeArithmetic(bits, (Cast(frac - out_t.frac_bits, out_t, bits),), scales, sizes)
    if layer.kind == "multiply":
        need = product_bits(list(in_types))
        if need > 63:
            raise ModelError(f"layer {layer.name!r}: the product of {in_types[0]} and {in_types[1]} needs {need} bits")
        bits = 32 if need <= 31 and fits32(_magnitude(out_t)) else 64
        frac = in_types[0].frac_bits + in_types[1].frac_bits
        return MergeArithmetic(bits, (Cast(frac - out_t.frac_bits, out_t, bits),), (), sizes)
    if layer.kind == "concatenate":
        axis = layer.resolved_axis(len(out_shape))
        bits = 32 if fits32(_magnitude(out_t), *(_magnitude(t) for t in in_types)) else 64
        casts = tuple(Cast(t.frac_bits - out_t.frac_bits, out_t, bits) for t in in_types)
        outer = int(np.prod(out_shape[:axis]))
        return MergeArithmetic(bits, casts, (), sizes, outer, tuple(int(np.prod(s[axis:])) for s in in_shapes))
    if layer.kind == "clip":
        (in_t,) = in_types
        lo, hi = clip_bounds(layer, in_t)
        bits = 32 if fits32(_magnitude(in_t), _magnitude(out_t), abs(lo), abs(hi)) else 64
        return MergeArithmetic(bits, (Cast(in_t.frac_bits - out_t.frac_bits, out_t, bits),), (), sizes, lo=lo, hi=hi)
    if layer.kind == "upsample":
        (in_t,) = in_types
        bits = 32 if fits32(_magnitude(in_t), _magnitude(out_t)) else 64
        in_shape = tuple(int(d) for d in in_shapes[0])
        if len(in_shape) == 2:  # (L, C) as (1, L, C): one kernel for both
            in_shape, factors = (1, *in_shape), (1, *layer.size)
        else:
            factors = tuple(layer.size)
        return MergeArithmetic(bits, (Cast(in_t.frac_bits - out_t.frac_bits, out_t, bits),), (), sizes,
                               in_shape=in_shape, factors=factors)
    raise ModelError(f"layer {layer.name!r}: the C backend has no kernel for {layer.kind!r} layers")


MERGE_KINDS = frozenset({"add", "multiply", "concatenate", "clip", "upsample"})
