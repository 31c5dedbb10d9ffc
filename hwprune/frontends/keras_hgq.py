"""HGQ "proxy" models: plain Keras layers and HGQ's ``FixedPointQuantizer`` layers.

HGQ (High Granularity Quantization, Sun et al.; ``calad0i/HGQ``) trains a quantization per
weight and per activation element, and exports a "proxy" model (``HGQ.proxy``): ordinary
Keras layers whose weights are already quantized, each output followed by a
``FixedPointQuantizer``. The quantizer's weights hold its parameters, one value per element
or broadcast over the tensor (the first axis is the batch's): ``keep_negative`` (0 or 1),
``bits`` (the width, sign included) and ``integers`` (integer bits, sign included); its
configuration names the rounding (``RND``) and overflow (``SAT``) modes. HGQ's
``gfixed_quantizer`` computes, per element, with ``f = bits - integers``:

    q = round_mode(x * 2^f);  q = overflow_mode(q, keep_negative, bits);  y = q / 2^f * (bits != 0)

with ``TRN`` = floor, ``RND`` = floor(v + 1/2), ``RND_CONV`` = to the nearest, a tie to the
even value; ``WRAP`` two's complement in ``bits`` bits, ``SAT`` a clamp to
``[-2^(bits-1) * k, 2^(bits-k) - 1]``: ap_fixed's ``<bits, integers>`` cast, which is
``ir.fixed.cast`` with the same modes. Other modes (``RND_ZERO``, ``SAT_SYM``, ...) are
refused.

Mapping: a quantizer whose parameters are the same for every element is that tensor's type:
it becomes the ``result_t`` of the layer before it when that layer computes, has no type yet
and nothing else reads it (a Dense or Conv, a ReLU), else a ``Quantize`` layer with one
element type. A quantizer whose parameters differ per element is a ``Quantize`` layer
(``ir.activations``), exact in the reference, the C and the float simulation. The weights
are taken as stored (on their grid: ``quant.exact`` gives each layer the narrowest types that
hold them exactly, as HGQ's per-weight widths differ); the sums between quantizers are exact.
The file is read as data: HGQ is never imported.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import UnsupportedLayerError, WeightError
from hwprune.frontends.keras_builder import Builder
from hwprune.frontends.keras_layers import converter
from hwprune.ir.activations import Quantize
from hwprune.ir.fixed import Fixed, Overflow, Rounding

ROUNDINGS = {"TRN": Rounding.TRN, "RND": Rounding.RND, "RND_CONV": Rounding.RND_CONV}
OVERFLOWS = {"WRAP": Overflow.WRAP, "SAT": Overflow.SAT}
PARAMETERS = ("keep_negative", "bits", "integers")


def _parameters(keras_name: str, weights: tuple, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``(keep_negative, bits, integers)`` without the batch axis, as the smallest trailing
    block of the tensor's shape over which they broadcast."""
    where = f"layer {keras_name!r} (FixedPointQuantizer)"
    if len(weights) != 3:
        raise WeightError(f"{where}: holds {len(weights)} weight arrays; keep_negative, bits and integers expected")
    arrays = []
    for label, value in zip(PARAMETERS, weights):
        a = np.asarray(value, dtype=np.float64)
        if a.size < 1 or not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
            raise WeightError(f"{where}: {label} must be integers")
        if a.ndim > len(shape) + 1 or (a.ndim == len(shape) + 1 and a.shape[0] != 1):
            raise WeightError(f"{where}: {label} has shape {a.shape}, which does not broadcast over the batch of "
                              f"{shape} tensors")
        try:
            full = np.broadcast_to(a, (1, *shape))[0].astype(np.int64)
        except ValueError:
            raise WeightError(f"{where}: {label} has shape {a.shape}, which does not broadcast over {shape}") from None
        arrays.append(full)
    for start in range(len(shape), -1, -1):  # the shortest suffix that repeats over the leading axes
        blocks = [a[(0,) * start] for a in arrays]
        if all(np.array_equal(np.broadcast_to(b, a.shape), a) for a, b in zip(arrays, blocks)):
            return tuple(blocks)
    raise AssertionError("the whole shape repeats")  # start == 0 always holds


@converter("FixedPointQuantizer")
def _fixed_point_quantizer(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    where = f"layer {keras_name!r} (FixedPointQuantizer)"
    rounding, overflow = config.get("RND", "TRN"), config.get("SAT", "WRAP")
    if rounding not in ROUNDINGS or overflow not in OVERFLOWS:
        raise UnsupportedLayerError(f"{where}: rounding {rounding!r} with overflow {overflow!r} is not supported "
                                    f"(rounding {', '.join(ROUNDINGS)}; overflow {', '.join(OVERFLOWS)} are)")
    keep_negative, bits, integers = _parameters(keras_name, weights, builder.shape)
    if not np.isin(keep_negative, (0, 1)).all():
        raise WeightError(f"{where}: keep_negative must be 0 or 1")
    if bits.min() < 0 or bits.max() > Quantize.MAX_ELEMENT_WIDTH:
        raise UnsupportedLayerError(f"{where}: widths {bits.min()}..{bits.max()} bits; hwprune takes 0 to "
                                    f"{Quantize.MAX_ELEMENT_WIDTH}")
    rounding, overflow = ROUNDINGS[rounding], OVERFLOWS[overflow]
    # HGQ zeroes an element of no bits whatever its other parameters say
    keep_negative, integers = np.where(bits == 0, 0, keep_negative), np.where(bits == 0, 0, integers)
    layer = Quantize(name, widths=bits, int_bits=integers, signed=keep_negative, rounding=rounding,
                     overflow=overflow)
    if bits.size == 1 and int(bits.reshape(-1)[0]) > 0 and _fuse(builder, layer):
        return
    builder.add(layer.with_(result_t=layer.common_type()))


def _fuse(builder: Builder, layer: Quantize) -> bool:
    """Give one element type to the layer that computed the tensor, when that layer is the
    last one made, computes, has no type yet and has no other reader."""
    if not builder.layers or builder.layers[-1].name != builder.current:
        return False
    last = builder.layers[-1]
    readers = [k for k, tensor in builder.tensors.items() if tensor == builder.current]
    if not last.computes or last.result_t is not None or any(builder.readers.get(k, 1) != 1 for k in readers):
        return False
    (t,) = layer.element_types().values()
    builder.layers[-1] = last.with_(result_t=Fixed(t.width, t.int_bits, t.signed, layer.rounding, layer.overflow))
    builder.linear.discard(last.name)  # a BatchNorm after it cannot fold into a typed result
    builder.open_linear = False
    return True
