"""One converter per Keras layer class: Keras configuration + weights -> IR layers.

A converter checks that the weights fit the layer (``WeightError`` naming it when they
do not) and appends IR layers to a ``Builder``, which tracks the running shape and folds
BatchNormalization into a neighbouring Dense or Conv.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from hwprune.errors import ModelError, UnsupportedLayerError, WeightError
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, Flatten, Layer, ReLU, Softmax


class Builder:
    """The IR layers made so far, the shape after them, and a BatchNorm waiting to fold."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.input_shape = tuple(input_shape)
        self.shape = tuple(input_shape)
        self.layers: list[Layer] = []
        self.open_linear = False  # the last layer is a Dense/Conv with nothing applied after it
        self.pending_norm: Optional[tuple[str, np.ndarray, np.ndarray]] = None  # (name, scale, shift)

    def add(self, layer: Layer, linear: bool = False) -> None:
        if self.pending_norm is not None and not isinstance(layer, Flatten):
            name = self.pending_norm[0]
            if not isinstance(layer, Dense):
                raise UnsupportedLayerError(
                    f"layer {name!r} (BatchNormalization) follows an activation and is followed by "
                    f"{layer.kind!r}; it can fold only into the Dense or Conv right before it or into the next Dense")
            layer = self._fold_into_next(layer)
        self.shape = tuple(layer.output_shape(self.shape))
        self.layers.append(layer)
        self.open_linear = linear

    def _fold_into_next(self, dense: Dense) -> Dense:
        _, scale, shift = self.pending_norm
        self.pending_norm = None
        # The norm acted per channel (last axis); a Flatten in between repeats it per position.
        repeat = dense.in_features // scale.size
        scale, shift = np.tile(scale, repeat), np.tile(shift, repeat)
        return dense.with_(weight=dense.weight * scale[None, :], bias=dense.bias + dense.weight @ shift)

    def fold_norm(self, name: str, scale: np.ndarray, shift: np.ndarray) -> None:
        channels = self.shape[-1]
        if scale.shape != (channels,):
            raise WeightError(f"layer {name!r} (BatchNormalization): {scale.size} channels, its input has {channels}")
        if self.open_linear:
            last = self.layers[-1]
            axes = (slice(None),) + (None,) * (last.weight.ndim - 1)
            self.layers[-1] = last.with_(weight=last.weight * scale[axes], bias=last.bias * scale + shift)
            return
        if self.pending_norm is not None:
            raise UnsupportedLayerError(f"layer {name!r} (BatchNormalization): two norms in a row cannot fold")
        self.pending_norm = (name, scale, shift)

    def graph(self, name: str, where: str) -> Graph:
        if self.pending_norm is not None:
            raise UnsupportedLayerError(
                f"{where}: layer {self.pending_norm[0]!r} (BatchNormalization) has no Dense or Conv to fold into")
        if not self.layers:
            raise ModelError(f"{where}: the model has no layers hwprune computes")
        return Graph.chain(name, self.input_shape, tuple(self.layers))


Converter = Callable[[Builder, str, str, dict, tuple], None]
CONVERTERS: dict[str, Converter] = {}
#: Activation names (``activation="sigmoid"``) -> a function of the IR layer name making the layer
#: (``keras_activations`` registers its own; relu, softmax and linear are below).
ACTIVATIONS: dict[str, Callable[[str], Layer]] = {}


def converter(*class_names: str):
    def register(fn: Converter) -> Converter:
        for class_name in class_names:
            CONVERTERS[class_name] = fn
        return fn

    return register


def weight_count(class_name: str, config: dict) -> int:
    """How many arrays ``get_weights()`` holds for a layer of this class."""
    if class_name in ("Dense", "Conv1D", "Conv2D"):
        return 2 if config.get("use_bias", True) else 1
    if class_name == "PReLU":
        return 1
    if class_name == "BatchNormalization":
        return int(config.get("scale", True)) + int(config.get("center", True)) + 2
    return 0


def _expect(name: str, class_name: str, weights: tuple, shapes: list[tuple[int, ...]]) -> None:
    got = [tuple(w.shape) for w in weights]
    if got != [tuple(s) for s in shapes]:
        raise WeightError(f"layer {name!r} ({class_name}): weights have shapes {got}, the architecture needs {shapes}")


def _activation(builder: Builder, keras_name: str, name: str, activation) -> None:
    if isinstance(activation, dict):  # a serialized activation object
        activation = activation.get("config", {}).get("name", activation.get("class_name"))
    activation = (activation or "linear").lower()
    if activation == "linear":
        return
    if activation == "relu":
        builder.add(ReLU(f"{name}_relu" if builder.layers and builder.layers[-1].name == name else name))
    elif activation == "softmax":
        builder.add(Softmax(f"{name}_softmax" if builder.layers and builder.layers[-1].name == name else name))
    elif activation in ACTIVATIONS:
        builder.add(ACTIVATIONS[activation](
            f"{name}_{activation}" if builder.layers and builder.layers[-1].name == name else name))
    else:
        raise UnsupportedLayerError(f"layer {keras_name!r}: activation {activation!r} is not supported "
                                    f"({', '.join(['relu', 'softmax', 'linear', *ACTIVATIONS])} are)")


@converter("InputLayer")
def _input(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    if builder.layers:
        raise UnsupportedLayerError(f"layer {keras_name!r} (InputLayer) is not the first layer")


@converter("Dropout")
def _dropout(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    """Dropout does nothing at inference."""


@converter("Flatten")
def _flatten(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    if config.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"layer {keras_name!r} (Flatten): only channels_last is supported")
    builder.add(Flatten(name))


@converter("Dense")
def _dense(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    if len(builder.shape) != 1:
        raise UnsupportedLayerError(f"layer {keras_name!r} (Dense) reads a {len(builder.shape)}-D input "
                                    f"{builder.shape}; add a Flatten before it")
    units, n_in = int(config["units"]), builder.shape[0]
    use_bias = config.get("use_bias", True)
    _expect(keras_name, "Dense", weights, [(n_in, units)] + ([(units,)] if use_bias else []))
    bias = weights[1] if use_bias else np.zeros(units)
    builder.add(Dense(name, weight=weights[0].T, bias=bias), linear=True)  # Keras kernels are (in, out)
    _activation(builder, keras_name, name, config.get("activation"))


@converter("Activation")
def _activation_layer(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    _activation(builder, keras_name, name, config.get("activation"))


@converter("ReLU")
def _relu(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    slope = config.get("negative_slope", config.get("alpha", 0.0)) or 0.0
    if config.get("max_value") is not None or float(slope) != 0.0 or float(config.get("threshold", 0.0) or 0.0) != 0.0:
        raise UnsupportedLayerError(f"layer {keras_name!r} (ReLU): only the plain ReLU (no max_value, "
                                    "negative_slope or threshold) is supported")
    builder.add(ReLU(name))


@converter("Softmax")
def _softmax(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    builder.add(Softmax(name))


@converter("BatchNormalization")
def _batch_norm(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, len(builder.shape)):
        raise UnsupportedLayerError(f"layer {keras_name!r} (BatchNormalization): only the last (channel) axis "
                                    f"is supported, got axis {axis}")
    channels = builder.shape[-1]
    scale_on, center_on = config.get("scale", True), config.get("center", True)
    count = int(scale_on) + int(center_on) + 2
    _expect(keras_name, "BatchNormalization", weights, [(channels,)] * count)
    arrays = list(weights)
    gamma = arrays.pop(0) if scale_on else np.ones(channels)
    beta = arrays.pop(0) if center_on else np.zeros(channels)
    mean, variance = arrays
    scale = gamma / np.sqrt(variance + float(config.get("epsilon", 1e-3)))
    builder.fold_norm(keras_name, scale, beta - scale * mean)


# -- convolutions and pooling (channels-last, as Keras' default and hls4ml) ----------------------

def _tuple(value, rank: int) -> tuple[int, ...]:
    values = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value] * rank))
    return values * rank if len(values) == 1 else values


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": the output has ceil(size / stride) positions; the extra padding
    goes after the input."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _resolve_padding(keras_name: str, class_name: str, padding: str, spatial: tuple, window: tuple, stride: tuple):
    if padding == "valid":
        return tuple((0, 0) for _ in window)
    if padding == "same":
        return tuple(_same_padding(n, k, s) for n, k, s in zip(spatial, window, stride))
    raise UnsupportedLayerError(f"layer {keras_name!r} ({class_name}): padding {padding!r} is not supported "
                                "(valid and same are)")


def _check_spatial(builder: Builder, keras_name: str, class_name: str, rank: int, config: dict) -> None:
    if len(builder.shape) != rank + 1:
        raise UnsupportedLayerError(f"layer {keras_name!r} ({class_name}) reads input shape {builder.shape}; "
                                    f"it needs {rank} spatial axes and channels")
    if config.get("data_format", "channels_last") not in ("channels_last", None):
        raise UnsupportedLayerError(f"layer {keras_name!r} ({class_name}): only data_format channels_last is supported")


def _conv(rank: int):
    def convert(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
        from hwprune.ir.layers import Conv1D, Conv2D

        class_name = f"Conv{rank}D"
        _check_spatial(builder, keras_name, class_name, rank, config)
        if any(d != 1 for d in _tuple(config.get("dilation_rate", 1), rank)) or int(config.get("groups", 1)) != 1:
            raise UnsupportedLayerError(f"layer {keras_name!r} ({class_name}): dilation and groups are not supported")
        kernel, stride = _tuple(config["kernel_size"], rank), _tuple(config.get("strides", 1), rank)
        filters, cin = int(config["filters"]), builder.shape[-1]
        use_bias = config.get("use_bias", True)
        _expect(keras_name, class_name, weights, [(*kernel, cin, filters)] + ([(filters,)] if use_bias else []))
        padding = _resolve_padding(keras_name, class_name, config.get("padding", "valid"), builder.shape[:-1],
                                   kernel, stride)
        weight = np.moveaxis(weights[0], -1, 0)  # Keras (k..., in, out) -> IR (out, k..., in)
        bias = weights[1] if use_bias else np.zeros(filters)
        cls = Conv1D if rank == 1 else Conv2D
        builder.add(cls(name, weight=weight, bias=bias, stride=stride, padding=padding), linear=True)
        _activation(builder, keras_name, name, config.get("activation"))

    return convert


def _pool(rank: int, op: str):
    def convert(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
        from hwprune.ir import layers as ir

        class_name = f"{'Max' if op == 'max' else 'Average'}Pooling{rank}D"
        _check_spatial(builder, keras_name, class_name, rank, config)
        window = _tuple(config.get("pool_size", 2), rank)
        stride = _tuple(config.get("strides") or window, rank)
        padding = _resolve_padding(keras_name, class_name, config.get("padding", "valid"), builder.shape[:-1],
                                   window, stride)
        cls = getattr(ir, f"{'MaxPool' if op == 'max' else 'AvgPool'}{rank}D")
        builder.add(cls(name, pool_size=window, stride=stride, padding=padding))  # Keras averages exclude padding

    return convert


CONVERTERS["Conv1D"] = _conv(1)
CONVERTERS["Conv2D"] = _conv(2)
for _rank in (1, 2):
    CONVERTERS[f"MaxPooling{_rank}D"] = CONVERTERS[f"MaxPool{_rank}D"] = _pool(_rank, "max")
    CONVERTERS[f"AveragePooling{_rank}D"] = CONVERTERS[f"AvgPool{_rank}D"] = _pool(_rank, "avg")
