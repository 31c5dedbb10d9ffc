"""Resource rules for the layers that merge or clamp tensors (hls4ml's ``nnet_merge.h`` and
``relu_max``): Add, Multiply, Concatenate, Clip. Every element has its own operator (the
loops are unrolled under ``#pragma HLS PIPELINE``); operand alignment and concatenation
are wiring, a cast to another type costs its rounding and saturation logic.
"""

from __future__ import annotations

import numpy as np

from hwprune.fpga.constants import dsp_tiles
from hwprune.fpga.estimate import LUT_MULTIPLIER_FACTOR, NARROW_PRODUCT_BITS, LayerResources, Options, rule
from hwprune.reference_merge import add_grid


def _elements(shapes) -> int:
    return max(int(np.prod(s)) for s in shapes)


def _cast_luts(n: int, source, target) -> int:
    """A cast's rounding and saturation logic: about half a LUT per output bit (as the
    output casts of the dense rule); nothing when the types are the same."""
    return 0 if source == target else n * target.width // 2


@rule("add")
def add(layer, in_shapes, in_types, options: Options) -> LayerResources:
    n = _elements(in_shapes)
    _, bits = add_grid(list(in_types))
    # one carry-chain adder of the exact sum's width per element (a LUT per bit), then the cast
    lut = n * bits + n * layer.result_t.width // 2
    return LayerResources(layer.name, layer.kind, lut=lut, ff=n * layer.result_t.width, latency_cycles=1, ii=1,
                          method=f"{n} adders of {bits} bits")


@rule("multiply")
def multiply(layer, in_shapes, in_types, options: Options) -> LayerResources:
    n = _elements(in_shapes)
    a, b = (t.width for t in in_types)
    lut = n * layer.result_t.width // 2
    if a + b <= NARROW_PRODUCT_BITS:
        dsp, lut = 0, lut + int(n * LUT_MULTIPLIER_FACTOR * a * b)
    else:
        dsp = n * dsp_tiles(a, b, *options.dsp_shape)
    return LayerResources(layer.name, layer.kind, dsp=dsp, lut=lut, ff=n * layer.result_t.width,
                          latency_cycles=2 if dsp else 1, ii=1, products={"dsp": n if dsp else 0, "lut": 0 if dsp else n},
                          method=f"{n} products of {a}x{b} bits {'in DSPs' if dsp else 'in LUTs'}")


@rule("concatenate")
def concatenate(layer, in_shapes, in_types, options: Options) -> LayerResources:
    lut = sum(_cast_luts(int(np.prod(s)), t, layer.result_t) for s, t in zip(in_shapes, in_types))
    return LayerResources(layer.name, layer.kind, lut=lut, method="wiring" + (" and casts" if lut else ""))


@rule("clip")
def clip(layer, in_shape, in_t, options: Options) -> LayerResources:
    # a comparator with each bound (a carry chain of the input's width) and a 3:1 mux per output bit
    n = int(np.prod(in_shape))
    return LayerResources(layer.name, layer.kind, lut=n * (2 * in_t.width + layer.result_t.width), latency_cycles=0,
                          ii=1, method="two comparators and a mux per element")
