"""The hls4ml I/O type a graph gets when none is named (``--io-type auto``, the default).

In ``io_parallel`` hls4ml 1.3.0 writes every convolution's im2col step out as code
(``nnet_code_gen.h``, one assignment per copied input value: output positions x kernel
taps x input channels), because HLS tools schedule the explicit copies better than a loop.
g++ compiles that code for the C simulation, and its time grows with the number of
copies: MLPerf Tiny's ResNet-8 on 32x32x3 has 494,592 of them, a 14 MB header that g++
did not finish compiling in 20 minutes at hls4ml's -O3 on a loaded 2-core machine (331 s at
-O0). The Resource strategy and reuse factors do not shorten it: hls4ml writes the same
im2col code for every io_parallel convolution. ``io_stream`` (what hls4ml recommends for
convolutional networks) reads each convolution through a line buffer instead: the same
ResNet-8 compiles in 39 s at -O3 (docs/graphs.md), and its C simulation equals the
reference as io_parallel's does (``stream.py``).

So ``auto`` streams a graph whose convolutions need more than ``IM2COL_LIMIT`` copies, and
keeps ``io_parallel`` (every layer's outputs at once: the lowest latency) below it, or
when the graph has something hls4ml streams not (an Add or Multiply that broadcasts, a
type per element).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hwprune.hls4ml_options import AUTO_IO, HlsOptions
from hwprune.ir.graph import Graph

#: im2col copies above which ``auto`` streams. The io_parallel C simulations of
#: docs/graphs.md (16,320 to 37,824 copies) export in one to three minutes on a loaded
#: 2-core machine, compile included; the build time grows with the copies.
IM2COL_LIMIT = 65_536


def im2col_copies(graph: Graph) -> int:
    """The assignments hls4ml's io_parallel im2col code holds for all convolutions."""
    total = 0
    for layer in graph.layers:
        if layer.kind not in ("conv1d", "conv2d"):
            continue
        (shape,) = graph.input_shapes(layer)
        positions = int(np.prod(layer.output_shape(shape)[:-1]))
        total += positions * int(np.prod(layer.kernel_size)) * int(shape[-1])
    return total


def stream_obstacle(graph: Graph) -> str:
    """Why hls4ml cannot stream ``graph`` (a layer and the reason), or "" when it can."""
    for layer in graph.layers:
        if layer.kind == "quantize":  # activations.py: hls4ml has FixedPointQuantizer for arrays only
            return f"layer {layer.name!r} has a type per element"
        if layer.kind in ("add", "multiply"):
            shapes = graph.input_shapes(layer)
            if any(tuple(s) != tuple(shapes[0]) for s in shapes):
                return f"layer {layer.name!r} broadcasts {shapes[0]} against {shapes[1]}"
    return ""


def resolve_io_type(graph: Graph, options: HlsOptions) -> HlsOptions:
    """``options`` with ``auto`` replaced by the I/O type chosen for ``graph``; other
    values are the user's choice and stay."""
    if options.io_type != AUTO_IO:
        return options
    stream = im2col_copies(graph) > IM2COL_LIMIT and not stream_obstacle(graph)
    return dataclasses.replace(options, io_type="io_stream" if stream else "io_parallel")
