"""Resource rules for convolution and pooling (hls4ml's ``io_stream`` architecture).

hls4ml streams a conv's input through line buffers and computes one output position at a
time with one instance of the filter-matrix product (a Dense over the window,
``weight.reshape(out, -1)``), so a conv costs that Dense's logic plus its line buffer,
and needs one interval per output position: II = positions x reuse. Pooling compares or
adds the cells of a window, one window per cycle.
"""

from __future__ import annotations

import math

import numpy as np

from hwprune.fpga.estimate import LayerResources, Options, dense, rule
from hwprune.ir.layers import Dense
from hwprune.ir.fixed import Fixed

# A line buffer at most this many bits stays in shift registers (SRL/FF), else BRAM
# (a calibrated guess, as LUTRAM_MAX_BITS in estimate.py).
LINE_BUFFER_MAX_FF_BITS = 4096


def _window_dense(layer) -> Dense:
    out = layer.weight.shape[0]
    return Dense(layer.name, layer.weight.reshape(out, -1), layer.bias, weight_t=layer.weight_t,
                 bias_t=layer.bias_t, accum_t=layer.accum_t, result_t=layer.result_t)


def _line_buffer(in_shape, window: tuple[int, ...], in_t: Fixed) -> tuple[int, int]:
    """(flip-flops, 18Kb block RAMs) to hold the rows a window spans."""
    channels = int(in_shape[-1])
    if len(window) == 1:
        bits = window[0] * channels * in_t.width
    else:
        bits = (window[0] - 1) * int(in_shape[1]) * channels * in_t.width + window[1] * channels * in_t.width
    if bits <= LINE_BUFFER_MAX_FF_BITS:
        return bits, 0
    return window[-1] * channels * in_t.width, math.ceil(bits / 18432)


@rule("conv1d")
@rule("conv2d")
def conv(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    window = layer.kernel_size
    matrix_in = (int(np.prod(layer.weight.shape[1:])),)
    inner = dense(_window_dense(layer), matrix_in, in_t, options)
    positions = int(np.prod(layer.output_shape(in_shape)[:-1]))
    buffer_ff, buffer_bram = _line_buffer(in_shape, window, in_t)
    per_position = max(inner.ii, 1)
    return LayerResources(layer.name, layer.kind, dsp=inner.dsp, lut=inner.lut, ff=inner.ff + buffer_ff,
                          bram_18k=inner.bram_18k + buffer_bram,
                          latency_cycles=positions * per_position + inner.latency_cycles,
                          ii=positions * per_position, products=inner.products,
                          method=f"io_stream: {inner.method}, one of {positions} positions per {per_position} cycle(s)")


def _pool(layer, in_shape, in_t: Fixed, cells: int, adds: bool) -> LayerResources:
    channels = int(in_shape[-1])
    out_shape = layer.output_shape(in_shape)
    positions = int(np.prod(out_shape[:-1]))
    width = layer.accum_t.width if adds and getattr(layer, "accum_t", None) else in_t.width
    # max: a comparator (carry chain) and a mux per cell; avg: an adder per cell and a
    # constant multiplication for the division.
    per_cell = width if adds else 2 * width
    lut = channels * (max(cells - 1, 0) * per_cell + (width if adds else 0))
    window = getattr(layer, "pool_size", None)
    buffer_ff, buffer_bram = _line_buffer(in_shape, window, in_t) if window else (channels * width, 0)
    depth = math.ceil(math.log2(cells)) if cells > 1 else 0
    return LayerResources(layer.name, layer.kind, lut=lut, ff=buffer_ff + channels * layer.result_t.width,
                          bram_18k=buffer_bram, latency_cycles=positions + 1 + depth // 3, ii=positions,
                          method=f"io_stream: {cells}-cell {'sum' if adds else 'max'} per channel")


@rule("maxpool1d")
@rule("maxpool2d")
def maxpool(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    return _pool(layer, in_shape, in_t, int(np.prod(layer.pool_size)), adds=False)


@rule("avgpool1d")
@rule("avgpool2d")
def avgpool(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    return _pool(layer, in_shape, in_t, int(np.prod(layer.pool_size)), adds=True)


@rule("globalavgpool1d")
@rule("globalavgpool2d")
def global_avgpool(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    # One accumulator per channel, fed one position per cycle.
    channels = int(in_shape[-1])
    positions = int(np.prod(in_shape[:-1]))
    width = layer.accum_t.width
    return LayerResources(layer.name, layer.kind, lut=channels * 2 * width, ff=channels * (width + layer.result_t.width),
                          latency_cycles=positions + 2, ii=positions, method="io_stream: one accumulator per channel")
