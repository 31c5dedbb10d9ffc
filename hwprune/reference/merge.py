"""Integer reference kernels of the layers that merge, clamp or reshape tensors
(semantics: ``hwprune.ir.merge`` and ``hwprune.ir.layers``).

Add and Multiply form their exact result in int64 (hls4ml's ap_fixed ``+`` and ``*``
widen to hold it) and cast it once; a layer whose exact result would not fit int64 is a
ModelError naming it, never a silent wrap.
"""

from __future__ import annotations

import math

import numpy as np

from hwprune.errors import ModelError
from hwprune.ir.layers import Clip, Concatenate, Layer, UpSample
from hwprune.ir.merge import Add, Multiply
from hwprune.ir.fixed import Fixed, cast
from hwprune.reference.core import kernel


def _aligned(shorter: np.ndarray, rank: int) -> np.ndarray:
    """A batch of the shorter operand with unit axes in front, so numpy repeats it as
    hls4ml's ``data2[i % n_elem2]`` does."""
    return shorter.reshape(shorter.shape[0], *([1] * (rank - shorter.ndim)), *shorter.shape[1:])


def _operands(xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    a, b = xs
    rank = max(a.ndim, b.ndim)
    return _aligned(a, rank), _aligned(b, rank)


def add_grid(types: list[Fixed]) -> tuple[int, int]:
    """Add's common grid: fraction bits, and the bits the exact sum needs (sign included)."""
    frac = max(t.frac_bits for t in types)
    bits = max(t.width - t.frac_bits + frac + (0 if t.signed else 1) for t in types) + 1
    return frac, bits


@kernel("add")
def add(layer: Add, xs: list[np.ndarray], types: list[Fixed]) -> np.ndarray:
    frac, bits = add_grid(types)
    if bits > 63:
        raise ModelError(f"layer {layer.name!r}: adding {types[0]} and {types[1]} exactly needs {bits} bits; "
                         "use types with closer fraction bits")
    a, b = _operands(xs)
    total = (a << np.int64(frac - types[0].frac_bits)) + (b << np.int64(frac - types[1].frac_bits))
    return cast(total, frac, layer.result_t)


def product_bits(types: list[Fixed]) -> int:
    return sum(t.width + (0 if t.signed else 1) for t in types)


@kernel("multiply")
def multiply(layer: Multiply, xs: list[np.ndarray], types: list[Fixed]) -> np.ndarray:
    if product_bits(types) > 63:
        raise ModelError(f"layer {layer.name!r}: the product of {types[0]} and {types[1]} needs "
                         f"{product_bits(types)} bits; use narrower types")
    a, b = _operands(xs)
    return cast(a * b, types[0].frac_bits + types[1].frac_bits, layer.result_t)


@kernel("concatenate")
def concatenate(layer: Concatenate, xs: list[np.ndarray], types: list[Fixed]) -> np.ndarray:
    axis = layer.resolved_axis(xs[0].ndim - 1) + 1  # after the batch axis
    return np.concatenate([cast(x, t.frac_bits, layer.result_t) for x, t in zip(xs, types)], axis=axis)


def clip_bounds(layer: Clip, in_t: Fixed) -> tuple[int, int]:
    """The clamp's integer bounds on the input's grid, limited to its range (exact:
    ``ceil``/``floor`` of a real scaled by a power of two)."""
    scale = 2.0 ** in_t.frac_bits
    lo = max(math.ceil(layer.min_value * scale), in_t.min_int)
    hi = min(math.floor(layer.max_value * scale), in_t.max_int)
    return lo, max(lo, hi)


@kernel("clip")
def clip(layer: Clip, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    lo, hi = clip_bounds(layer, in_t)
    return cast(np.clip(x, lo, hi), in_t.frac_bits, layer.result_t)


@kernel("reshape")
def reshape(layer: Layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    return x.reshape(x.shape[0], *layer.target_shape)


@kernel("identity")
def identity(layer: Layer, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    return x


@kernel("upsample")
def upsample(layer: UpSample, x: np.ndarray, in_t: Fixed) -> np.ndarray:
    return cast(layer.repeat(x), in_t.frac_bits, layer.result_t)
