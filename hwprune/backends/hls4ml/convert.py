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
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwprune.backends.hls4ml.clip import BOUNDS_KEY
from hwprune.backends.hls4ml.iotype import resolve_io_type
from hwprune.backends.hls4ml.mappers import MAPPERS, Operands
from hwprune.backends.hls4ml.stream import inserted_layers
from hwprune.errors import ModelError, OptionError
from hwprune.hls4ml_options import STRATEGIES, HlsOptions
from hwprune.ir.graph import Graph
from hwprune.ir.fixed import Fixed
from hwprune.quant.precision import input_name

WEIGHTED = ("dense", "conv1d", "conv2d")
TYPE_KEYS = {"weight_t": "weight", "bias_t": "bias", "accum_t": "accum", "result_t": "result",
             "param_t": "param", "scale_t": "scale"}  # a type not here is a layer attribute (activations.py)


@dataclass(frozen=True)
class Conversion:
    """What ``to_layer_list`` made: hls4ml's layer dicts and configuration, and which IR
    layer each hls4ml layer stands for."""

    layer_list: list
    config: dict
    converted: tuple[str, ...]  # IR layer names that became hls4ml layers, in order
    skipped: tuple[str, ...]  # IR layers with nothing to compute in hls4ml (flat Flatten, final Softmax)
    #: hls4ml layers added for an IR layer (a Concatenate of three tensors joins two pairs): name -> IR layer
    auxiliary: tuple[tuple[str, str], ...] = ()
    #: the hls4ml layer whose output is the model's
    output: str = ""
    #: Clip layers hls4ml writes as a relu, to switch to hwprune's kernel: (name, lo, hi) on the input's grid
    clips: tuple[tuple[str, int, int], ...] = ()


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
    """hls4ml's layer list: each IR layer reads the hls4ml tensors its inputs became (a
    layer that computes nothing in hls4ml hands its input's tensor on)."""
    if not graph.is_quantized:
        raise ModelError(f"model {graph.name!r} is not quantized; the hls4ml backend needs fixed-point types")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(f"model {graph.name!r} has inputs {list(graph.input_names)} and outputs "
                         f"{list(graph.outputs)}; the hls4ml backend takes one input and one output")
    source = input_name(graph)
    tensors = {graph.input.name: source}  # IR tensor -> the hls4ml tensor holding its values
    layers = [{"class_name": "InputLayer", "name": source, "input_shape": list(graph.input_shape)}]
    precisions = {source: {"Precision": {"result": graph.input_t.hls()}}}
    converted, skipped, auxiliary, clips = [], [], [], []
    taken = {source} | {layer.name for layer in graph.layers}
    for layer in graph.layers:
        fn = MAPPERS.get(layer.kind)
        if fn is None:
            raise ModelError(f"layer {layer.name!r}: the hls4ml backend has no mapping for {layer.kind!r}")
        operands = Operands(tuple(tensors[s] for s in layer.inputs), graph.input_shapes(layer),
                            graph.input_types(layer), options.io_type)
        entries = fn(layer, operands, options)
        if entries is None:
            skipped.append(layer.name)
            tensors[layer.name] = operands.source
            continue
        entries = [entries] if isinstance(entries, dict) else list(entries)
        if BOUNDS_KEY in entries[-1]:
            clips.append((layer.name, *entries[-1].pop(BOUNDS_KEY)))
        result = {"result": graph.type_of(layer.name).hls()}
        for entry in entries[:-1]:
            if entry["name"] in taken:
                raise ModelError(f"layer {layer.name!r}: hls4ml needs a layer named {entry['name']!r} for it, "
                                 "a name the model uses already; rename that layer")
            taken.add(entry["name"])
            precisions[entry["name"]] = {"Precision": dict(result)}
            auxiliary.append((entry["name"], layer.name))
        layers.extend(entries)
        conf = {"Precision": {TYPE_KEYS[k]: t.hls() for k, t in layer.types().items() if k in TYPE_KEYS}}
        if not layer.computes:  # io_stream may make a Reshape a Repack with a type of its own: the input's
            conf["Precision"].update(result)
        if layer.kind in WEIGHTED:
            conf.update(ReuseFactor=options.reuse_of(layer.name), Strategy=STRATEGIES[options.strategy_of(layer.name)])
        precisions[layer.name] = conf
        converted.append(layer.name)
        tensors[layer.name] = layer.name
    config = {
        "OutputDir": str(output_dir), "ProjectName": project, "Backend": options.tool, "Part": options.part,
        "ClockPeriod": options.clock_period_ns, "IOType": options.io_type, "WriteWeightsTxt": True,
        "HLSConfig": {"Model": {"Precision": graph.input_t.hls(), "ReuseFactor": options.reuse_factor,
                                "Strategy": options.hls4ml_strategy, "BramFactor": 1_000_000_000,
                                # hwprune sets every type; hls4ml's bit-exact flow (on by default with a
                                # FixedPointQuantizer) would derive its own
                                "BitExact": False},
                      "LayerName": precisions},
    }
    return Conversion(layers, config, tuple(converted), tuple(skipped), tuple(auxiliary),
                      output=tensors[graph.output], clips=tuple(clips))


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
        if node is None and (name in replaced or (not ir_layer.computes and name == conversion.output)):
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
    for name, owner in conversion.auxiliary:
        node = by_name.get(name)
        if node is None or not _same_type(node.get_output_variable().type.precision, graph.type_of(owner)):
            raise ModelError(f"layer {name!r} (part of {owner!r}): hls4ml dropped it or changed its type "
                             f"from {graph.type_of(owner).hls()}")
    extra = (set(by_name) - set(conversion.converted) - set(inserted) - {name for name, _ in conversion.auxiliary}
             - {conversion.layer_list[0]["name"]})
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
    from hls4ml.model.graph import ModelGraph

    options = resolve_io_type(graph, options)
    conversion = to_layer_list(graph, options, output_dir, project)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = ModelGraph.from_layer_list(conversion.config, conversion.layer_list,
                                               outputs=[conversion.output] if conversion.output else None)
        except Exception as exc:  # hls4ml raises bare exceptions (assert, Exception) for what it refuses
            raise ModelError(f"hls4ml refused model {graph.name!r}: {type(exc).__name__}: {exc}") from None
    check_model(model, graph, conversion, options)
    return model, conversion
