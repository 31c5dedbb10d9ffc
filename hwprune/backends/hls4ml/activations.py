"""hls4ml layers for LeakyReLU/PReLU, HardSigmoid, Sigmoid, Tanh, Selu, Sign, BatchNorm, Quantize (``mappers.MAPPERS``).

hls4ml computes them in ``nnet_activation.h`` with the semantics ``ir.activations``
defines. Their constants reach hls4ml as the IR holds them: a LeakyReLU's slope is the
``activ_param`` literal, which the C++ converts to ``param_t`` exactly (the IR's slope is on
that grid); a PReLU's slopes are a weight of ``param_t``, one per element (hls4ml's
``alpha[i]``), so per-channel slopes are repeated over the other axes; a HardSigmoid's
slope and shift are literals that hls4ml's ``slope_t``/``shift_t`` constants round as the
reference does (``slope_prec``/``shift_prec``). Sigmoid, Tanh and Selu pass their table size and
``table_t`` as layer attributes (hls4ml reads no ``table`` precision from the configuration
for them); ``param_t`` goes through the precision configuration (``convert.TYPE_KEYS``).
A Quantize layer (a type per element, HGQ's) is hls4ml's own ``FixedPointQuantizer`` layer
(``hls4ml/model/optimizer/passes/hgq_proxy_model.py``), whose generated code casts element
``i`` to ``ap_fixed<bits[i], integers[i], RND, SAT>`` (0 where ``bits[i]`` is 0) and assigns it
to the result type, which holds it exactly; its parameters ``mask_kbi`` carry a batch axis
first. hls4ml generates that code for io_parallel only: with io_stream it is refused.
A Sign of scale 1 is ``nnet::binary_tanh`` (``x >= 0 ? 1 : -1`` cast to the result type);
hls4ml has no sign of another scale, which is refused.
"""

from __future__ import annotations

import numpy as np

from hwprune.backends.hls4ml.mappers import Operands, mapper
from hwprune.errors import UnsupportedLayerError
from hwprune.hls4ml_options import HlsOptions
from hwprune.ir.fixed import Fixed


def _precision(t: Fixed):
    from hls4ml.model.types import FixedPrecisionType, RoundingMode, SaturationMode

    return FixedPrecisionType(width=t.width, integer=t.int_bits, signed=t.signed,
                              rounding_mode=RoundingMode.from_string(t.rounding.value),
                              saturation_mode=SaturationMode.from_string(t.overflow.value))


@mapper("leaky_relu")
def _leaky_relu(layer, ops: Operands, options: HlsOptions) -> dict:
    if not layer.per_channel:
        return {"class_name": "LeakyReLU", "name": layer.name, "inputs": [ops.source], "activation": "LeakyReLU",
                "activ_param": float(layer.alpha[0])}
    alpha = np.broadcast_to(layer.alpha, tuple(ops.shape)).reshape(-1)
    return {"class_name": "PReLU", "name": layer.name, "inputs": [ops.source], "activation": "prelu",
            "param_data": np.ascontiguousarray(alpha)}


@mapper("hard_sigmoid")
def _hard_sigmoid(layer, ops: Operands, options: HlsOptions) -> dict:
    return {"class_name": "HardActivation", "name": layer.name, "inputs": [ops.source], "activation": "hard_sigmoid",
            "slope": float(layer.slope), "shift": float(layer.shift),
            "slope_prec": _precision(layer.slope_t), "shift_prec": _precision(layer.shift_t)}


def _table_activation(layer, ops: Operands, options: HlsOptions) -> dict:
    return {"class_name": "Activation", "name": layer.name, "inputs": [ops.source], "activation": layer.function,
            "table_size": int(layer.table_size), "table_t": _precision(layer.table_t)}


mapper("sigmoid")(_table_activation)
mapper("tanh")(_table_activation)
mapper("selu")(_table_activation)  # nnet::selu: the table for x < 0, its own lambda * x for x >= 0


@mapper("sign")
def _sign(layer, ops: Operands, options: HlsOptions) -> dict:
    if layer.scale != 1.0:
        raise UnsupportedLayerError(f"layer {layer.name!r}: a sign of scale {layer.scale} has no hls4ml equivalent "
                                    "(nnet::binary_tanh computes +-1 only)")
    return {"class_name": "Activation", "name": layer.name, "inputs": [ops.source], "activation": "binary_tanh"}


@mapper("batchnorm")
def _batchnorm(layer, ops: Operands, options: HlsOptions) -> dict:
    """hls4ml's BatchNormalization with its scale and bias given (``normalize``: the product
    and the sum exact, one cast to the result); ``n_filt`` channels repeat along the last axis."""
    shape = tuple(ops.shape)
    n_in = int(np.prod(shape))
    return {"class_name": "BatchNormalization", "name": layer.name, "inputs": [ops.source], "n_in": n_in,
            "n_filt": -1 if len(shape) == 1 else layer.channels,
            "scale_data": np.ascontiguousarray(layer.scale), "bias_data": np.ascontiguousarray(layer.bias)}


@mapper("quantize")
def _quantize(layer, ops: Operands, options: HlsOptions) -> dict:
    if ops.io_type != "io_parallel":
        raise UnsupportedLayerError(f"layer {layer.name!r}: a type per element (HGQ's FixedPointQuantizer) exists in "
                                    "hls4ml for io_parallel only; use --io-type parallel")
    shape = tuple(ops.shape)
    k, b, i = (np.ascontiguousarray(np.broadcast_to(a, shape))[None] for a in (layer.signed, layer.widths,
                                                                                  layer.int_bits))
    return {"class_name": "FixedPointQuantizer", "name": layer.name, "inputs": [ops.source],
            "RND": layer.rounding.value, "SAT": layer.overflow.value, "fusible": False, "mask_kbi": (k, b, i),
            "overrides": {}}
