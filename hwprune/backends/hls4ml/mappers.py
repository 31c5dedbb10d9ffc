"""One IR layer -> hls4ml 1.3.0 layer dicts (for ``ModelGraph.from_layer_list``), per kind.

A mapper gets the layer, its ``Operands`` (hls4ml's names of the tensors it reads, their
shapes and fixed-point types, in operand order) and the options. It returns one dict, a
list of dicts (auxiliary layers first, each with a ``precision`` entry, then the one named
as the IR layer), or None when the layer computes nothing in hls4ml (its output is then its
input's tensor).

What each merge layer computes in hls4ml (``nnet_merge.h``) and why it equals the reference:

- Add / Multiply -> ``Merge`` (op ``add``/``multiply``): ``res[i] = data1[i % n1] op
  data2[i % n2]``; ap_fixed's ``+`` and ``*`` are exact, then one assignment to the result
  type, as ``hwprune.ir.merge`` defines them. Broadcasting (a shorter operand) exists in
  io_parallel only.
- Concatenate -> ``Concatenate`` (op ``concatenate1d/2d/3d``, Keras' axis counting the batch
  axis): each element assigned to the result type. hls4ml joins two tensors; three or more
  are joined pairwise, left to right, every partial result of the layer's own result type
  (a value cast to that type casts to itself again).
- Clip -> ``relu`` / ``relu6`` / ``relu1`` where one of them clamps at the same integers:
  ``relu_max`` compares the input with 0 and the integer bound exactly and assigns the bound
  (or the input) to the result type. hls4ml 1.3.0 streams ``relu`` only. Other bounds go to
  hwprune's ``nnet::clip`` (``clip.py``), which compares with the bounds' bit patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwprune.backends.hls4ml.clip import BOUNDS_KEY
from hwprune.errors import ModelError
from hwprune.hls4ml_options import HlsOptions
from hwprune.ir.layers import Layer
from hwprune.ir.fixed import Fixed
from hwprune.reference.merge import clip_bounds


@dataclass(frozen=True)
class Operands:
    """What a layer reads, as hls4ml sees it: tensor names, shapes, types."""

    names: tuple[str, ...]
    shapes: tuple[tuple, ...]
    types: tuple[Fixed, ...]
    io_type: str

    @property
    def source(self) -> str:
        return self.names[0]

    @property
    def shape(self) -> tuple:
        return self.shapes[0]


LayerMapper = Callable[[Layer, Operands, HlsOptions], "dict | list[dict] | None"]
MAPPERS: dict[str, LayerMapper] = {}


def mapper(*kinds: str):
    def register(fn: LayerMapper) -> LayerMapper:
        for kind in kinds:
            MAPPERS[kind] = fn
        return fn

    return register


@mapper("dense")
def _dense(layer, ops: Operands, options: HlsOptions) -> dict:
    return {"class_name": "Dense", "name": layer.name, "inputs": [ops.source], "n_in": layer.in_features,
            "n_out": layer.out_features, "weight_data": np.ascontiguousarray(layer.weight.T),
            "bias_data": np.asarray(layer.bias), "activation": "linear"}


@mapper("relu")
def _relu(layer, ops: Operands, options: HlsOptions) -> dict:
    return {"class_name": "Activation", "name": layer.name, "inputs": [ops.source], "activation": "relu"}


#: hls4ml's clamping activations: name -> the upper bound it compares with (None: no bound)
_CLAMPS = {"relu": None, "relu1": 1, "relu6": 6}


@mapper("clip")
def _clip(layer, ops: Operands, options: HlsOptions) -> dict:
    (in_t,) = ops.types
    wanted = clip_bounds(layer, in_t)
    for name, top in _CLAMPS.items():
        if top is not None and ops.io_type != "io_parallel":
            continue  # hls4ml 1.3.0 has relu_max for arrays only, not for streams
        if top is not None and (top * 2.0 ** in_t.frac_bits) % 1:
            continue  # the bound is off the input's grid: relu_max would assign a value the reference never holds
        probe = type(layer)(layer.name, 0.0, float(in_t.max_int) / 2.0 ** in_t.frac_bits if top is None else top)
        if clip_bounds(probe, in_t) == wanted:
            return {"class_name": "Activation", "name": layer.name, "inputs": [ops.source], "activation": name}
    # hwprune's own kernel (backends/hls4ml/clip.py), written over a relu after hls4ml writes it
    return {"class_name": "Activation", "name": layer.name, "inputs": [ops.source], "activation": "relu",
            BOUNDS_KEY: wanted}


@mapper("flatten", "reshape")
def _reshape(layer, ops: Operands, options: HlsOptions):
    target = list(layer.output_shape(ops.shape))
    if tuple(target) == tuple(ops.shape):
        return None  # nothing to do
    return {"class_name": "Reshape", "name": layer.name, "inputs": [ops.source], "target_shape": target}


@mapper("identity")
def _identity(layer, ops: Operands, options: HlsOptions):
    return None


@mapper("softmax")
def _softmax(layer, ops: Operands, options: HlsOptions):
    return None  # the project ends at the logits (see convert's module docstring)


@mapper("add", "multiply")
def _merge(layer, ops: Operands, options: HlsOptions) -> dict:
    if ops.shapes[0] != ops.shapes[1] and ops.io_type != "io_parallel":
        raise ModelError(f"layer {layer.name!r}: hls4ml broadcasts {ops.shapes[0]} against {ops.shapes[1]} in "
                         "io_parallel only; export with --io-type parallel")
    return {"class_name": "Merge", "name": layer.name, "inputs": list(ops.names), "op": layer.kind}


@mapper("concatenate")
def _concatenate(layer, ops: Operands, options: HlsOptions) -> list[dict]:
    rank = len(ops.shape)
    if rank > 3:
        raise ModelError(f"layer {layer.name!r}: hls4ml concatenates tensors of rank 3 at most, got {ops.shape}")
    axis = layer.resolved_axis(rank) + 1  # Keras' axis: the batch axis is 0
    entries, left = [], ops.source
    for i, right in enumerate(ops.names[1:], start=1):
        name = layer.name if i == len(ops.names) - 1 else f"{layer.name}_part{i}"
        entries.append({"class_name": "Concatenate", "name": name, "inputs": [left, right],
                        "op": f"concatenate{rank}d", "axis": axis})
        left = name
    return entries


def _conv(layer, ops: Operands, options: HlsOptions) -> dict:
    if layer.depthwise:
        return _depthwise(layer, ops, options)
    shape = ops.shape
    out_shape = layer.output_shape(shape)
    entry = {"class_name": "Conv1D" if layer.rank == 1 else "Conv2D", "name": layer.name, "inputs": [ops.source],
             "data_format": "channels_last", "n_chan": int(shape[-1]), "n_filt": layer.out_channels,
             # IR (out, k..., in) -> hls4ml / Keras (k..., in, out)
             "weight_data": np.ascontiguousarray(np.moveaxis(layer.weight, 0, -1)),
             "bias_data": np.asarray(layer.bias), "activation": "linear"}
    entry.update(_geometry(layer, shape, out_shape, layer.kernel_size, "filt"))
    return entry


def _depthwise(layer, ops: Operands, options: HlsOptions) -> dict:
    """hls4ml's DepthwiseConv1D/2D (``nnet_sepconv*``): per channel, the bias in the
    accumulator type, then each product (as the accumulator type) added in kernel order and
    one cast to the result type, as the reference's depthwise conv. hls4ml 1.3.0 computes a
    depth multiplier of 1 only, with the Latency strategy (its Resource kernel asserts)."""
    shape = ops.shape
    if layer.multiplier(int(shape[-1])) != 1:
        raise ModelError(f"layer {layer.name!r}: hls4ml 1.3.0 computes depthwise convolutions with a depth "
                         f"multiplier of 1 only, this one has {layer.multiplier(int(shape[-1]))}")
    if options.strategy_of(layer.name) not in ("latency", "da"):
        raise ModelError(f"layer {layer.name!r}: hls4ml 1.3.0 has no Resource strategy for depthwise "
                         "convolutions; export with --strategy latency (or a --config setting it for this layer)")
    entry = {"class_name": "DepthwiseConv1D" if layer.rank == 1 else "DepthwiseConv2D", "name": layer.name,
             "inputs": [ops.source], "data_format": "channels_last", "n_chan": int(shape[-1]),
             "n_filt": layer.out_channels, "depth_multiplier": 1,
             # IR (out, k..., 1) -> Keras' depthwise kernel (k..., in, 1)
             "depthwise_data": np.ascontiguousarray(np.moveaxis(layer.weight, 0, -2)),
             "bias_data": np.asarray(layer.bias), "activation": "linear"}
    entry.update(_geometry(layer, shape, layer.output_shape(shape), layer.kernel_size, "filt"))
    return entry


def _geometry(layer, shape: tuple, out_shape: tuple, window: tuple, prefix: str) -> dict:
    if layer.rank == 1:
        (left, right), = layer.padding
        return {"in_width": int(shape[0]), "out_width": int(out_shape[0]), f"{prefix}_width": int(window[0]),
                "stride_width": int(layer.stride[0]), "pad_left": left, "pad_right": right}
    (top, bottom), (left, right) = layer.padding
    return {"in_height": int(shape[0]), "in_width": int(shape[1]), "out_height": int(out_shape[0]),
            "out_width": int(out_shape[1]), f"{prefix}_height": int(window[0]), f"{prefix}_width": int(window[1]),
            "stride_height": int(layer.stride[0]), "stride_width": int(layer.stride[1]),
            "pad_top": top, "pad_bottom": bottom, "pad_left": left, "pad_right": right}


MAPPERS["conv1d"] = MAPPERS["conv2d"] = _conv


def _pool(layer, ops: Operands, options: HlsOptions) -> dict:
    shape = ops.shape
    if getattr(layer, "count_pad", False) and any(p != (0, 0) for p in layer.padding):
        raise ModelError(f"layer {layer.name!r}: hls4ml's average pooling does not count padding; "
                         "this layer does (count_pad)")
    if layer.op == "max" and not ops.types[0].signed and any(p != (0, 0) for p in layer.padding):
        raise ModelError(f"layer {layer.name!r}: hls4ml pads max pooling with the input type's lowest bit "
                         f"pattern, which for the unsigned {ops.types[0]} is a large positive value")
    out_shape = layer.output_shape(shape)
    entry = {"class_name": f"{'Max' if layer.op == 'max' else 'Average'}Pooling{layer.rank}D", "name": layer.name,
             "inputs": [ops.source], "data_format": "channels_last", "n_filt": int(shape[-1])}
    entry.update(_geometry(layer, shape, out_shape, layer.pool_size, "pool"))
    if layer.rank == 1:
        entry["n_in"], entry["n_out"] = entry.pop("in_width"), entry.pop("out_width")
    return entry


for _kind in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
    MAPPERS[_kind] = _pool


@mapper("globalavgpool1d", "globalavgpool2d")
def _global_pool(layer, ops: Operands, options: HlsOptions) -> dict:
    # hls4ml's pool_op Average: the accumulator type's running sum, then a C division by the
    # count, as the reference's ``average`` (reference.spatial) defines it
    shape = ops.shape
    entry = {"class_name": f"GlobalAveragePooling{layer.rank}D", "name": layer.name, "inputs": [ops.source],
             "data_format": "channels_last", "n_filt": int(shape[-1])}
    if layer.rank == 1:
        entry["n_in"] = int(shape[0])
    else:
        entry["in_height"], entry["in_width"] = int(shape[0]), int(shape[1])
    return entry
