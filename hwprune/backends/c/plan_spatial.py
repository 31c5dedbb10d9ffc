"""What the generated C computes for conv and pooling layers (``plan.plan_model`` calls it).

Layout: every activation is channels-last, row-major, so element ``(h, w, c)`` of an
``H x W x C`` tensor is at ``(h * W + w) * C + c``; 1-D layers are 2-D ones of height 1.

- Conv: for each output position and filter, the Dense arithmetic (``plan.dense_arithmetic``,
  the reference's own summing rule) over the filter's nonzero weights in storage order
  (kh, kw, cin), taps on padding skipped or multiplied by the zero border of a padded copy
  (they add an exact zero either way). No im2col buffer. Dense storage (not depthwise)
  and csro read the padded copy (``Window.padded_h``/``padded_w``) with no check; csr
  decodes each nonzero's column into ``(i, j, c)`` with constant divisions and checks it.
- MaxPool: the largest input cell of the window (padding never wins), cast to ``accum_t``
  then to ``result_t``.
- AvgPool / GlobalAvgPool: ``acc = accum(acc + x)`` per input cell (both on a common grid,
  scaled by multiplication, never by shifting a negative value), then C's truncating
  division by the count, then the cast to ``result_t`` (``ir.spatial`` defines it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwprune.backends.c.cast import Cast
from hwprune.errors import ModelError
from hwprune.ir.layers import Layer, Shape
from hwprune.ir.fixed import Fixed

INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1
CONV_KINDS = ("conv1d", "conv2d")
POOL_KINDS = ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "globalavgpool1d", "globalavgpool2d")


@dataclass(frozen=True)
class Window:
    """The geometry of a conv or pooling layer in 2-D (height 1 for 1-D layers)."""

    in_h: int
    in_w: int
    channels: int
    out_h: int
    out_w: int
    out_channels: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    multiplier: int = 0  # depthwise: filters per input channel (0: not depthwise)
    in_per_group: int = 1

    @property
    def taps(self) -> int:
        return self.k_h * self.k_w

    @property
    def padded_h(self) -> int:
        """Rows of the zero-bordered input every window falls inside: the padding above,
        the input, and as many rows below as the last window needs."""
        return max(self.pad_top + self.in_h, (self.out_h - 1) * self.stride_h + self.k_h)

    @property
    def padded_w(self) -> int:
        return max(self.pad_left + self.in_w, (self.out_w - 1) * self.stride_w + self.k_w)

    @property
    def needs_padding(self) -> bool:
        """Whether some window reaches past the input (a csro kernel then reads a padded copy)."""
        return self.pad_top > 0 or self.pad_left > 0 or (self.padded_h, self.padded_w) != (self.in_h, self.in_w)


# Conv kernels that read a padded layer through a static zero-bordered copy of its input
# (templates/c/kernels/conv_common.j2 padded_buffer); depthwise and csr check every tap.
PADDED_COPY_FORMATS = ("dense", "csro")


def padded_copy_bytes(step) -> int:
    """Bytes of the static padded input copy ``step``'s kernel keeps (0 if none)."""
    g, storage = getattr(step, "window", None), getattr(step, "storage", None)
    if (g is None or storage is None or step.layer.kind not in CONV_KINDS or g.multiplier
            or storage.format not in PADDED_COPY_FORMATS or not g.needs_padding):
        return 0
    return g.padded_h * g.padded_w * g.channels * np.dtype(step.source.c_type.removesuffix("_t")).itemsize


def window(layer: Layer, input_shape: Shape, output_shape: Shape) -> Window:
    if layer.kind.startswith("globalavgpool"):
        spatial = input_shape[:-1] if len(input_shape) == 3 else (1, *input_shape[:-1])
        c = input_shape[-1]
        return Window(spatial[0], spatial[1], c, 1, 1, c, spatial[0], spatial[1], 1, 1, 0, 0)
    if layer.rank == 1:
        (n, c), (out, oc) = input_shape, output_shape
        size = (1, *(getattr(layer, "pool_size", None) or layer.kernel_size))
        geo = dict(in_h=1, in_w=n, channels=c, out_h=1, out_w=out, out_channels=oc, k_h=size[0], k_w=size[1],
                   stride_h=1, stride_w=layer.stride[0], pad_top=0, pad_left=layer.padding[0][0])
    else:
        (h, w, c), (oh, ow, oc) = input_shape, output_shape
        size = getattr(layer, "pool_size", None) or layer.kernel_size
        geo = dict(in_h=h, in_w=w, channels=c, out_h=oh, out_w=ow, out_channels=oc, k_h=size[0], k_w=size[1],
                   stride_h=layer.stride[0], stride_w=layer.stride[1], pad_top=layer.padding[0][0],
                   pad_left=layer.padding[1][0])
    if layer.kind in CONV_KINDS:
        geo.update(multiplier=layer.multiplier(input_shape[-1]) if layer.depthwise else 0,
                   in_per_group=layer.in_channels_per_group)
    return Window(**geo)


@dataclass(frozen=True)
class PoolArithmetic:
    """The integer steps of a pooling kernel (casts as ``Cast``)."""

    op: str  # "max" or "avg"
    bits: int  # 32 or 64: the C integer every step uses
    to_accum: object  # Cast: max -> accum (max pooling) or the sum -> accum (average)
    result: object  # Cast: accum -> result
    acc_scale: int = 1  # average: the accumulator times this lands on the common grid
    x_scale: int = 1  # average: an input times this lands on the common grid
    count: Optional[int] = None  # average: a fixed divisor (count_pad, global), else counted

    @property
    def c_int(self) -> str:
        return f"int{self.bits}_t"


def _magnitude(t: Fixed) -> int:
    return max(-t.min_int, t.max_int)


def pool_arithmetic(layer: Layer, in_t: Fixed, geometry: Window) -> PoolArithmetic:
    acc_t, out_t = layer.accum_t, layer.result_t
    # The casts of hwprune_fixed.h are exact whenever both types' ranges fit the C integer.
    ranges = max(_magnitude(in_t), _magnitude(acc_t), _magnitude(out_t))
    if layer.op == "max":
        bits = 32 if ranges <= INT32_MAX else 64
        return PoolArithmetic("max", bits, Cast(in_t.frac_bits - acc_t.frac_bits, acc_t, bits),
                              Cast(acc_t.frac_bits - out_t.frac_bits, out_t, bits))
    frac = max(acc_t.frac_bits, in_t.frac_bits)
    acc_scale, x_scale = 1 << (frac - acc_t.frac_bits), 1 << (frac - in_t.frac_bits)
    # acc * acc_scale + x * x_scale, and the result cast's own shifts, must fit.
    bound = max(2 * max(_magnitude(acc_t) * acc_scale, _magnitude(in_t) * x_scale), ranges)
    if bound > INT64_MAX:
        raise ModelError(f"layer {layer.name!r}: the average of {in_t} in {acc_t} needs more than 64 bits in C")
    bits = 32 if bound <= INT32_MAX else 64
    fixed = layer.kind.startswith("global") or getattr(layer, "count_pad", False)
    return PoolArithmetic("avg", bits, Cast(frac - acc_t.frac_bits, acc_t, bits),
                          Cast(acc_t.frac_bits - out_t.frac_bits, out_t, bits), acc_scale, x_scale,
                          geometry.taps if fixed else None)
