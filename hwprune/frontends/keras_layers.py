"""One converter per Keras layer class: Keras configuration + weights -> IR layers.

A converter checks that the weights fit the layer (``WeightError`` naming it when they
do not) and appends IR layers to a ``Builder`` (``keras_builder``), which knows the tensors
the layer reads and folds BatchNormalization into a neighbouring Dense or Conv. Merge
layers (Add, Multiply, Concatenate) read every tensor the Keras layer reads.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hwprune.errors import UnsupportedLayerError, WeightError
from hwprune.frontends.keras_builder import Builder
from hwprune.ir import layers as ir
from hwprune.ir.layers import Add, Clip, Concatenate, Conv1D, Conv2D, Dense, Flatten, Layer, Multiply, ReLU, Softmax
from hwprune.ir.layers import GlobalAvgPool1D, GlobalAvgPool2D, Reshape


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
    if class_name in ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "QDense", "QConv1D", "QConv2D"):
        return 2 if config.get("use_bias", True) else 1
    if class_name == "PReLU":
        return 1
    if class_name == "FixedPointQuantizer":  # HGQ: keep_negative, bits, integers
        return 3
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
        builder.add(ReLU(f"{name}_relu" if builder.current == name else name))
    elif activation == "relu6":
        builder.add(Clip(f"{name}_relu6" if builder.current == name else name, min_value=0.0, max_value=6.0))
    elif activation == "softmax":
        builder.add(Softmax(f"{name}_softmax" if builder.current == name else name))
    elif activation in ACTIVATIONS:
        builder.add(ACTIVATIONS[activation](f"{name}_{activation}" if builder.current == name else name))
    else:
        raise UnsupportedLayerError(f"layer {keras_name!r}: activation {activation!r} is not supported "
                                    f"({', '.join(['relu', 'relu6', 'softmax', 'linear', *ACTIVATIONS])} are)")


@converter("InputLayer")
def _input(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    if builder.layers or builder.tensors:
        raise UnsupportedLayerError(f"layer {keras_name!r} (InputLayer) is not the first layer; hwprune reads "
                                    "models with one input")


@converter("Dropout")
def _dropout(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    """Dropout does nothing at inference."""


@converter("Flatten")
def _flatten(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    if config.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(f"layer {keras_name!r} (Flatten): only channels_last is supported")
    builder.add(Flatten(name))


@converter("Reshape")
def _reshape(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    """Keras reshapes row-major in the channels-last layout, the IR's own; one -1 is inferred."""
    target = [int(d) for d in config["target_shape"]]
    size = int(np.prod(builder.shape))
    if target.count(-1) == 1:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = size // known if known > 0 and size % known == 0 else 0
    builder.add(Reshape(name, target_shape=tuple(target)))  # a size that does not match is a ShapeError there


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
    if float(slope) != 0.0 or float(config.get("threshold", 0.0) or 0.0) != 0.0:
        raise UnsupportedLayerError(f"layer {keras_name!r} (ReLU): negative_slope and threshold are not supported "
                                    "(the plain ReLU and ReLU with max_value are)")
    if config.get("max_value") is not None:  # ReLU6 and its kin: a clamp to [0, max_value]
        builder.add(Clip(name, min_value=0.0, max_value=float(config["max_value"])))
    else:
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
    builder.fold_norm(keras_name, scale, beta - scale * mean, name)


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


def _global_pool(rank: int):
    def convert(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
        _check_spatial(builder, keras_name, f"GlobalAveragePooling{rank}D", rank, config)
        channels = builder.shape[-1]
        builder.add((GlobalAvgPool1D if rank == 1 else GlobalAvgPool2D)(name))
        if config.get("keepdims"):  # (1, ..., C): the same values
            builder.add(Reshape(f"{name}_keepdims", target_shape=(1,) * rank + (channels,)))

    return convert


for _rank in (1, 2):
    CONVERTERS[f"GlobalAveragePooling{_rank}D"] = CONVERTERS[f"GlobalAvgPool{_rank}D"] = _global_pool(_rank)


def _depthwise(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    """Keras' output channel ``c * depth_multiplier + m`` reads input channel ``c``, as the IR's
    depthwise conv (output ``o`` reads input ``o // multiplier``)."""
    class_name = "DepthwiseConv2D"
    _check_spatial(builder, keras_name, class_name, 2, config)
    if any(d != 1 for d in _tuple(config.get("dilation_rate", 1), 2)):
        raise UnsupportedLayerError(f"layer {keras_name!r} ({class_name}): dilation is not supported")
    kernel, stride = _tuple(config["kernel_size"], 2), _tuple(config.get("strides", 1), 2)
    multiplier, cin = int(config.get("depth_multiplier", 1)), builder.shape[-1]
    use_bias = config.get("use_bias", True)
    _expect(keras_name, class_name, weights, [(*kernel, cin, multiplier)] + ([(cin * multiplier,)] if use_bias else []))
    padding = _resolve_padding(keras_name, class_name, config.get("padding", "valid"), builder.shape[:-1], kernel, stride)
    weight = np.moveaxis(weights[0].reshape(*kernel, cin * multiplier), -1, 0)[..., None]  # (out, kh, kw, 1)
    bias = weights[1] if use_bias else np.zeros(cin * multiplier)
    builder.add(Conv2D(name, weight=weight, bias=bias, stride=stride, padding=padding, depthwise=True), linear=True)
    _activation(builder, keras_name, name, config.get("activation"))


CONVERTERS["DepthwiseConv2D"] = _depthwise


def _binary(cls):
    def convert(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
        """Keras merges any number of tensors; the IR's Add and Multiply take two: a chain of them."""
        inputs = list(builder.inputs)
        for i in range(1, len(inputs) - 1):
            builder.inputs = [builder.current if i > 1 else inputs[0], inputs[i]]
            builder.merge(cls(f"{name}_{i}"))
        builder.inputs = [builder.current if len(inputs) > 2 else inputs[0], inputs[-1]]
        builder.merge(cls(name))
        _activation(builder, keras_name, name, config.get("activation"))

    return convert


CONVERTERS["Add"] = _binary(Add)
CONVERTERS["Multiply"] = _binary(Multiply)


@converter("Concatenate")
def _concatenate(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    axis = int(config.get("axis", -1))
    if axis == 0:
        raise UnsupportedLayerError(f"layer {keras_name!r} (Concatenate): axis 0 is the batch axis")
    builder.merge(Concatenate(name, axis=axis if axis < 0 else axis - 1))  # Keras counts the batch axis
