"""A quantized IR graph -> an hls4ml ``ModelGraph``, every type explicit and checked.

hls4ml is driven through its Python API (``ModelGraph.from_layer_list``): no Keras, no
TensorFlow. It silently replaces an invalid reuse factor and silently falls back to a
default for a type that is not set, so every layer's weight, bias, accumulator and
result types, its strategy and its reuse factor are set here and read back after the
conversion; any difference is an error naming the layer.

A final Softmax is not converted: the project ends at the logits, as the integer
reference does (softmax does not change the argmax), so C simulation can equal the
reference bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hwprune.backends.hls4ml.options import STRATEGIES, HlsOptions
from hwprune.backends.hls4ml.stream import inserted_layers
from hwprune.errors import ModelError, OptionError
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Layer
from hwprune.quant.fixed import Fixed
from hwprune.quant.precision import input_name

WEIGHTED = ("dense", "conv1d", "conv2d")
TYPE_KEYS = {"weight_t": "weight", "bias_t": "bias", "accum_t": "accum", "result_t": "result",
             "param_t": "param"}  # a type not here is a layer attribute (activations.py)

# kind -> function(layer, input name, input shape, options) -> hls4ml layer dict, or None to skip
LayerMapper = Callable[[Layer, str, tuple, HlsOptions], "dict | None"]
MAPPERS: dict[str, LayerMapper] = {}


def mapper(kind: str):
    def register(fn: LayerMapper) -> LayerMapper:
        MAPPERS[kind] = fn
        return fn

    return register


@mapper("dense")
def _dense(layer, source: str, shape: tuple, options: HlsOptions) -> dict:
    return {"class_name": "Dense", "name": layer.name, "inputs": [source], "n_in": layer.in_features,
            "n_out": layer.out_features, "weight_data": np.ascontiguousarray(layer.weight.T),
            "bias_data": np.asarray(layer.bias), "activation": "linear"}


@mapper("relu")
def _relu(layer, source: str, shape: tuple, options: HlsOptions) -> dict:
    return {"class_name": "Activation", "name": layer.name, "inputs": [source], "activation": "relu"}


@mapper("flatten")
def _flatten(layer, source: str, shape: tuple, options: HlsOptions):
    if len(shape) == 1:
        return None  # already flat: nothing to do
    return {"class_name": "Reshape", "name": layer.name, "inputs": [source], "target_shape": [int(np.prod(shape))]}


def _conv(layer, source: str, shape: tuple, options: HlsOptions) -> dict:
    if layer.depthwise:
        raise ModelError(f"layer {layer.name!r}: depthwise convolutions are not mapped to hls4ml yet")
    out_shape = layer.output_shape(shape)
    entry = {"class_name": "Conv1D" if layer.rank == 1 else "Conv2D", "name": layer.name, "inputs": [source],
             "data_format": "channels_last", "n_chan": int(shape[-1]), "n_filt": layer.out_channels,
             # IR (out, k..., in) -> hls4ml / Keras (k..., in, out)
             "weight_data": np.ascontiguousarray(np.moveaxis(layer.weight, 0, -1)),
             "bias_data": np.asarray(layer.bias), "activation": "linear"}
    entry.update(_geometry(layer, shape, out_shape, layer.kernel_size, "filt"))
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


def _pool(layer, source: str, shape: tuple, options: HlsOptions) -> dict:
    if getattr(layer, "count_pad", False) and any(p != (0, 0) for p in layer.padding):
        raise ModelError(f"layer {layer.name!r}: hls4ml's average pooling does not count padding; "
                         "this layer does (count_pad)")
    out_shape = layer.output_shape(shape)
    entry = {"class_name": f"{'Max' if layer.op == 'max' else 'Average'}Pooling{layer.rank}D", "name": layer.name,
             "inputs": [source], "data_format": "channels_last", "n_filt": int(shape[-1])}
    entry.update(_geometry(layer, shape, out_shape, layer.pool_size, "pool"))
    if layer.rank == 1:
        entry["n_in"], entry["n_out"] = entry.pop("in_width"), entry.pop("out_width")
    return entry


for _kind in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
    MAPPERS[_kind] = _pool


@mapper("softmax")
def _softmax(layer, source: str, shape: tuple, options: HlsOptions):
    return None  # the project ends at the logits (see the module docstring)


@dataclass(frozen=True)
class Conversion:
    """What ``to_layer_list`` made: hls4ml's layer dicts and configuration, and which IR
    layer each hls4ml layer stands for."""

    layer_list: list
    config: dict
    converted: tuple[str, ...]  # IR layer names that became hls4ml layers, in order
    skipped: tuple[str, ...]  # IR layers with nothing to compute in hls4ml (flat Flatten, final Softmax)


def stamp(graph: Graph, options: HlsOptions) -> str:
    """A deterministic library stamp (hls4ml draws a random one), so that outputs are
    byte-identical for the same inputs."""
    digest = hashlib.sha256(repr((graph.name, [str(t) for l in graph.layers for t in l.types().values()],
                                  options.to_json())).encode())
    for layer in graph.layers:
        for array in layer.arrays().values():
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:8]


def to_layer_list(graph: Graph, options: HlsOptions, output_dir: Path, project: str) -> Conversion:
    if not graph.is_quantized:
        raise ModelError(f"model {graph.name!r} is not quantized; the hls4ml backend needs fixed-point types")
    source = input_name(graph)
    layers = [{"class_name": "InputLayer", "name": source, "input_shape": list(graph.input_shape)}]
    precisions = {source: {"Precision": {"result": graph.input_t.hls()}}}
    converted, skipped = [], []
    graph.require_chain("the hls4ml backend")
    for layer in graph.layers:
        (in_t,) = graph.input_types(layer)
        if layer.kind.startswith("maxpool") and not in_t.signed and any(
                p != (0, 0) for p in layer.padding):
            raise ModelError(f"layer {layer.name!r}: hls4ml pads max pooling with the input type's lowest bit "
                             f"pattern, which for the unsigned {in_t} is a large positive value")
        fn = MAPPERS.get(layer.kind)
        if fn is None:
            raise ModelError(f"layer {layer.name!r}: the hls4ml backend has no mapping for {layer.kind!r}")
        entry = fn(layer, source, graph.input_shape_of_layer(layer), options)
        if entry is None:
            skipped.append(layer.name)
            continue
        layers.append(entry)
        conf = {"Precision": {TYPE_KEYS[k]: t.hls() for k, t in layer.types().items() if k in TYPE_KEYS}}
        if layer.kind == "flatten":  # io_stream may make it a Repack with a type of its own: the input's
            conf["Precision"]["result"] = in_t.hls()
        if layer.kind in WEIGHTED:
            conf.update(ReuseFactor=options.reuse_of(layer.name), Strategy=STRATEGIES[options.strategy_of(layer.name)])
        precisions[layer.name] = conf
        converted.append(layer.name)
        source = layer.name
    config = {
        "OutputDir": str(output_dir), "ProjectName": project, "Backend": options.tool, "Part": options.part,
        "ClockPeriod": options.clock_period_ns, "IOType": options.io_type, "WriteWeightsTxt": True,
        "HLSConfig": {"Model": {"Precision": graph.input_t.hls(), "ReuseFactor": options.reuse_factor,
                                "Strategy": options.hls4ml_strategy, "BramFactor": 1_000_000_000},
                      "LayerName": precisions},
    }
    return Conversion(layers, config, tuple(converted), tuple(skipped))


def _same_type(precision, t: Fixed) -> bool:
    return (getattr(precision, "width", None) == t.width and getattr(precision, "integer", None) == t.int_bits
            and bool(getattr(precision, "signed", None)) == t.signed
            and getattr(getattr(precision, "rounding_mode", None), "name", None) == t.rounding.value
            and getattr(getattr(precision, "saturation_mode", None), "name", None) == t.overflow.value)


def check_model(model, graph: Graph, conversion: Conversion, options: HlsOptions) -> None:
    """Read every type, strategy and reuse factor back from hls4ml's model."""
    by_name = {layer.name: layer for layer in model.get_layers()}
    inserted = inserted_layers(model, graph, conversion.converted, _same_type)  # io_stream only
    replaced = set(inserted.values()) - set(by_name)  # a Flatten that hls4ml turned into a Repack
    for name in conversion.converted:
        ir_layer = graph.layer(name)
        node = by_name.get(name)
        if node is None and (name in replaced or (ir_layer.kind == "flatten" and name == conversion.converted[-1])):
            continue  # io_stream made it a Repack; or hls4ml removed a final Flatten, which changes no value
        if node is None:
            raise ModelError(f"layer {name!r}: hls4ml dropped it during conversion (it has {sorted(by_name)})")
        for key, t in ir_layer.types().items():
            if options.strategy_of(name) == "da" and key in ("weight_t", "bias_t"):
                # da4ml writes the weights and biases as exact constants into adder trees, so
                # hls4ml drops their types; the values are on their grid already.
                continue
            got = node.types.get(key)
            if got is None or not _same_type(got.precision, t):
                raise ModelError(f"layer {name!r}: hls4ml's {key} is {got.precision if got else None}, "
                                 f"expected {t.hls()}")
        if ir_layer.kind in WEIGHTED:
            rf, wanted_rf = node.get_attr("reuse_factor"), options.reuse_of(name)
            if rf != wanted_rf:
                valid = _valid_reuse_factors(model, node)
                raise OptionError(f"layer {name!r}: reuse factor {wanted_rf} is not valid for its shape; "
                                  f"valid reuse factors are {valid}")
            strategy, wanted = str(node.get_attr("strategy")).lower(), STRATEGIES[options.strategy_of(name)]
            if strategy != wanted.lower():
                raise ModelError(f"layer {name!r}: hls4ml's strategy is {strategy!r}, expected {wanted!r}")
    extra = set(by_name) - set(conversion.converted) - set(inserted) - {conversion.layer_list[0]["name"]}
    if extra:
        raise ModelError(f"hls4ml added layers hwprune does not model: {sorted(extra)}")
    out = model.get_output_variables()[0].type.precision
    if not _same_type(out, graph.output_t):
        raise ModelError(f"hls4ml's output type is {out}, expected {graph.output_t.hls()}")


def _valid_reuse_factors(model, node) -> list[int]:
    try:
        return list(model.config.backend.get_valid_reuse_factors(node.get_attr("n_in"), node.get_attr("n_out")))
    except Exception:  # a layer kind without that helper: say nothing rather than guess
        return []


def build_model(graph: Graph, options: HlsOptions, output_dir: Path, project: str):
    """The checked hls4ml ModelGraph of a quantized graph."""
    import warnings

    from hls4ml.model.graph import ModelGraph

    conversion = to_layer_list(graph, options, output_dir, project)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = ModelGraph.from_layer_list(conversion.config, conversion.layer_list)
        except Exception as exc:  # hls4ml raises bare exceptions (assert, Exception) for what it refuses
            raise ModelError(f"hls4ml refused model {graph.name!r}: {type(exc).__name__}: {exc}") from None
    check_model(model, graph, conversion, options)
    return model, conversion
