"""IR layers over a spatial axis: Conv1D/Conv2D, max/average pooling, global average pooling.

Tensors are channels-last without a batch axis: ``(length, channels)`` in 1-D,
``(height, width, channels)`` in 2-D (hls4ml's ``io_parallel`` layout, and CMSIS-NN's
NHWC). Import them from ``hwprune.ir.layers`` or ``hwprune.ir``.

Geometry, the same for convolutions and pooling, per spatial axis with input size ``n``,
window ``k``, stride ``s`` and padding ``(before, after)``: window ``j`` covers padded
positions ``j*s .. j*s + k - 1``, where padded position ``p`` is input position
``p - before``; there are ``(n + before + after - k) // s + 1`` windows (torch's and
hls4ml's ``ceil_mode=False`` rule). Dilation is 1. Frontends resolve "valid" and "same"
into these explicit numbers.

Fixed-point semantics (the integer reference, the C kernels and hls4ml 1.3.0's
``nnet_pooling.h`` agree on them):

- **Conv**: zero padding. Per output position and filter, as Dense over the filter's
  ``(kh, kw, cin)`` elements in that (storage) order: ``acc = accum(bias)``, then
  ``acc = accum(acc + accum(x * w))`` for every tap that lands inside the input (a padded
  tap adds an exact zero, so skipping it changes nothing), then ``y = result(acc)``.
- **MaxPool**: ``y = result(accum(max))`` over the window's cells inside the input; padded
  cells never win (torch pads with -inf). hls4ml pads with the type's most negative value,
  which is the same for signed inputs; for an unsigned input with padding its pad value
  (only the top bit set) is positive, so an FPGA backend must refuse that case.
- **AvgPool**: ``acc = 0``; ``acc = accum(acc + x)`` for every cell of the window inside the
  input, in row-major window order; ``count`` is the number of those cells, or the whole
  window ``prod(pool_size)`` when ``count_pad`` (torch's ``count_include_pad``, hls4ml's
  ``count_pad``); the quotient is taken on ``accum_t``'s grid and truncated toward zero
  (C integer division of the accumulator's integer by ``count``, as ap_fixed's
  ``acc /= count`` in hls4ml's ``avg``), cast to ``accum_t`` (it cannot overflow), then
  ``y = result(quotient)``.
- **GlobalAvgPool**: AvgPool over the whole spatial extent (no padding), output
  ``(channels,)``.

A pooling window must overlap the input: each padding is smaller than the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError
from hwprune.ir.base import Layer, Shape, WeightedLayer
from hwprune.ir.fixed import Fixed


def window_count(size: int, kernel: int, stride: int, pad: tuple[int, int]) -> int:
    """Number of windows along one axis (may be < 1 when the window does not fit)."""
    return (size + pad[0] + pad[1] - kernel) // stride + 1


def taps_inside(size: int, kernel: int, stride: int, pad: tuple[int, int]) -> np.ndarray:
    """For each kernel offset, how many windows read an input position (not padding)."""
    out = window_count(size, kernel, stride, pad)
    starts = np.arange(out) * stride - pad[0]
    return np.array([int(np.count_nonzero((starts + k >= 0) & (starts + k < size))) for k in range(kernel)],
                    dtype=np.int64)


def _int_tuple(value, rank: int, what: str, where: str, minimum: int) -> tuple[int, ...]:
    if value is None:
        raise ShapeError(f"{where}: {what} is required")
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * rank
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ShapeError(f"{where}: {what} must be {rank} integers, got {value!r}") from None
    if len(out) != rank or any(v < minimum for v in out):
        raise ShapeError(f"{where}: {what} must be {rank} integers >= {minimum}, got {value!r}")
    return out


def _padding(value, rank: int, where: str) -> tuple[tuple[int, int], ...]:
    if value is None:
        return ((0, 0),) * rank
    try:
        out = tuple((int(a), int(b)) for a, b in value)
    except (TypeError, ValueError):
        raise ShapeError(f"{where}: padding must be {rank} (before, after) pairs, got {value!r}") from None
    if len(out) != rank or any(v < 0 for pair in out for v in pair):
        raise ShapeError(f"{where}: padding must be {rank} (before, after) pairs of integers >= 0, got {value!r}")
    return out


def _output_spatial(layer, input_shape: Shape, window: tuple[int, ...]) -> tuple[int, ...]:
    rank = layer.rank
    if len(input_shape) != rank + 1:
        layout = "(length, channels)" if rank == 1 else "(height, width, channels)"
        raise ShapeError(f"layer {layer.name!r}: {type(layer).__name__} expects a {layout} input, got {tuple(input_shape)}")
    out = tuple(window_count(n, k, s, p) for n, k, s, p in zip(input_shape[:-1], window, layer.stride, layer.padding))
    if min(out) < 1:
        raise ShapeError(f"layer {layer.name!r}: window {window} does not fit input {tuple(input_shape)} "
                         f"with padding {layer.padding}")
    return out


@dataclass(frozen=True, eq=False)
class _Conv(WeightedLayer):
    """Shared by Conv1D and Conv2D; see the module docstring for the semantics."""

    stride: tuple[int, ...] = None  # type: ignore[assignment]
    padding: tuple[tuple[int, int], ...] = None  # type: ignore[assignment]
    depthwise: bool = False

    rank: ClassVar[int] = 0
    spatial: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        where = f"layer {self.name!r}"
        object.__setattr__(self, "stride", _int_tuple(1 if self.stride is None else self.stride, self.rank,
                                                      "stride", where, 1))
        object.__setattr__(self, "padding", _padding(self.padding, self.rank, where))
        object.__setattr__(self, "depthwise", bool(self.depthwise))
        if min(self.weight.shape) < 1:
            raise ShapeError(f"{where}: empty weight of shape {self.weight.shape}")
        if self.depthwise and self.weight.shape[-1] != 1:
            raise ShapeError(f"{where}: a depthwise weight has one input channel per filter, got shape {self.weight.shape}")

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[1:-1])

    @property
    def in_channels_per_group(self) -> int:
        return int(self.weight.shape[-1])

    def multiplier(self, in_channels: int) -> int:
        """Filters per input channel of a depthwise conv (output o reads input o // m)."""
        return self.out_channels // in_channels if self.depthwise else 1

    def output_shape(self, input_shape: Shape) -> Shape:
        spatial = _output_spatial(self, input_shape, self.kernel_size)
        cin = int(input_shape[-1])
        if self.depthwise:
            if self.out_channels % cin:
                raise ShapeError(f"layer {self.name!r}: depthwise conv with {self.out_channels} filters does not fit "
                                 f"{cin} input channels (need a multiple)")
        elif cin != self.in_channels_per_group:
            raise ShapeError(f"layer {self.name!r}: {type(self).__name__} expects {self.in_channels_per_group} input "
                             f"channels, got input shape {tuple(input_shape)}")
        return (*spatial, self.out_channels)

    def mac_count(self, input_shape: Shape, *, nonzero_only: bool = False) -> int:
        """Multiply-accumulates over every output position, taps on padding not counted."""
        self.output_shape(input_shape)
        per_offset = [taps_inside(n, k, s, p)
                      for n, k, s, p in zip(input_shape[:-1], self.kernel_size, self.stride, self.padding)]
        windows = per_offset[0] if self.rank == 1 else np.outer(per_offset[0], per_offset[1])
        w = self.weight != 0 if nonzero_only else np.ones(self.weight.shape, dtype=bool)
        per_tap = w.sum(axis=(0, w.ndim - 1))  # weights at each kernel offset, all filters
        return int((windows * per_tap).sum())


@dataclass(frozen=True, eq=False)
class Conv1D(_Conv):
    """1-D convolution; input ``(length, channels)``, weight ``(out, kernel, in_per_group)``."""

    kind: ClassVar[str] = "conv1d"
    rank: ClassVar[int] = 1
    weight_axes: ClassVar[tuple[str, ...]] = ("out", "kernel", "in_per_group")


@dataclass(frozen=True, eq=False)
class Conv2D(_Conv):
    """2-D convolution; input ``(H, W, C)``, weight ``(out, kh, kw, in_per_group)``."""

    kind: ClassVar[str] = "conv2d"
    rank: ClassVar[int] = 2
    weight_axes: ClassVar[tuple[str, ...]] = ("out", "kh", "kw", "in_per_group")


@dataclass(frozen=True, eq=False)
class _Pool(Layer):
    """Shared by the windowed pooling layers; ``stride`` defaults to ``pool_size``."""

    pool_size: tuple[int, ...] = None  # type: ignore[assignment]
    stride: tuple[int, ...] = None  # type: ignore[assignment]
    padding: tuple[tuple[int, int], ...] = None  # type: ignore[assignment]
    accum_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    computes: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    rank: ClassVar[int] = 0
    op: ClassVar[str] = ""

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        pool = _int_tuple(self.pool_size, self.rank, "pool_size", where, 1)
        object.__setattr__(self, "pool_size", pool)
        object.__setattr__(self, "stride", _int_tuple(pool if self.stride is None else self.stride, self.rank,
                                                      "stride", where, 1))
        pads = _padding(self.padding, self.rank, where)
        if any(max(p) >= k for p, k in zip(pads, pool)):
            raise ShapeError(f"{where}: padding {pads} must be smaller than the pool size {pool}")
        object.__setattr__(self, "padding", pads)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*_output_spatial(self, input_shape, self.pool_size), int(input_shape[-1]))


@dataclass(frozen=True, eq=False)
class MaxPool1D(_Pool):
    kind: ClassVar[str] = "maxpool1d"
    rank: ClassVar[int] = 1
    op: ClassVar[str] = "max"


@dataclass(frozen=True, eq=False)
class MaxPool2D(_Pool):
    kind: ClassVar[str] = "maxpool2d"
    rank: ClassVar[int] = 2
    op: ClassVar[str] = "max"


@dataclass(frozen=True, eq=False)
class AvgPool1D(_Pool):
    """``count_pad``: divide by the whole window, padded cells included (torch's default
    ``count_include_pad=True``); otherwise by the cells inside the input (Keras)."""

    count_pad: bool = False

    kind: ClassVar[str] = "avgpool1d"
    rank: ClassVar[int] = 1
    op: ClassVar[str] = "avg"


@dataclass(frozen=True, eq=False)
class AvgPool2D(_Pool):
    """``count_pad`` as in AvgPool1D."""

    count_pad: bool = False

    kind: ClassVar[str] = "avgpool2d"
    rank: ClassVar[int] = 2
    op: ClassVar[str] = "avg"


@dataclass(frozen=True, eq=False)
class _GlobalAvgPool(Layer):
    accum_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    computes: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    channelwise: ClassVar[bool] = True
    rank: ClassVar[int] = 0
    op: ClassVar[str] = "avg"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != self.rank + 1:
            layout = "(length, channels)" if self.rank == 1 else "(height, width, channels)"
            raise ShapeError(f"layer {self.name!r}: {type(self).__name__} expects a {layout} input, "
                             f"got {tuple(input_shape)}")
        return (int(input_shape[-1]),)


@dataclass(frozen=True, eq=False)
class GlobalAvgPool1D(_GlobalAvgPool):
    """Mean over the length axis: ``(length, C) -> (C,)``."""

    kind: ClassVar[str] = "globalavgpool1d"
    rank: ClassVar[int] = 1


@dataclass(frozen=True, eq=False)
class GlobalAvgPool2D(_GlobalAvgPool):
    """Mean over height and width: ``(H, W, C) -> (C,)``."""

    kind: ClassVar[str] = "globalavgpool2d"
    rank: ClassVar[int] = 2
