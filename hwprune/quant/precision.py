"""Types as an hls4ml user writes them: one precision for every tensor, or a configuration
file in the shape of hls4ml's ``hls_config`` (``Model:`` defaults, ``LayerName:`` entries).

A type for a layer's ``weight``, ``bias``, ``accum`` or ``result`` is looked up as hls4ml
1.3.0 does (``HLSConfig.get_precision``): the layer's own entry for that key, then the
layer's ``default``, then the model's entry for the key, then the model's ``default``.
hls4ml stops there (a model-wide ``Precision: fixed<16,6>`` makes the accumulator
``fixed<16,6>`` too); hwprune goes on to calibration: a type found nowhere, or spelled
``auto``, is chosen from the calibration data (``quant.calibrate``).

The activations' constant types (``CONSTANT_KEYS``: a BatchNorm's ``scale``, a LeakyReLU's or
PReLU's ``param``, a HardSigmoid's ``slope`` and ``shift``, a table's ``table``) are hls4ml's
names for them and are read from the layer's entry or the model's entry for that key only:
a ``default`` does not reach them, so a uniform ``--precision`` leaves them to calibration.

The file::

    Model:
      Precision: fixed<16,6>          # or {default: ..., weight: ..., accum: ...}
      ReuseFactor: 1
      Strategy: Latency               # Latency, Resource or distributed_arithmetic
    LayerName:
      x_in: {Precision: {result: fixed<16,6>}}     # the input (hls4ml's input layer)
      fc1:
        Precision: {weight: fixed<8,1,RND,SAT>, bias: fixed<16,6>, accum: fixed<24,10>, result: auto}
        ReuseFactor: 2
        Strategy: Resource

YAML (``.yaml``/``.yml``), JSON or TOML; the whole ``HLSConfig`` block of an hls4ml
configuration is read too. ``export --write-config`` writes what an export chose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional, Union

from hwprune.errors import FixedPointError, OptionError
from hwprune.ir.layers import LAYER_KINDS
from hwprune.ir.fixed import Fixed

INPUT_NAME = "x_in"  # hls4ml's input layer (hls4ml refuses a layer named "input")
KEYS = ("weight", "bias", "accum", "result")
#: Every other type a layer kind carries (``<key>_t`` fields): its constants' types.
CONSTANT_KEYS = tuple(sorted({f.name.removesuffix("_t") for cls in LAYER_KINDS.values() for f in fields(cls)
                              if f.name.endswith("_t")} - set(KEYS)))
ALL_KEYS = KEYS + CONSTANT_KEYS
AUTO = "auto"
#: hls4ml's strategy spellings (and hwprune's own) -> hwprune's
STRATEGY_NAMES = {"latency": "latency", "resource": "resource", "distributed_arithmetic": "da", "da": "da"}
HLS4ML_STRATEGY = {"latency": "Latency", "resource": "Resource", "da": "distributed_arithmetic"}
SUFFIXES = (".yaml", ".yml", ".json", ".toml")

TypeOrAuto = Union[Fixed, str]


def input_name(graph) -> str:
    """The name the input has in hls4ml's layer list and in a configuration file."""
    names = {layer.name for layer in graph.layers}
    name = INPUT_NAME
    while name in names:
        name += "_"
    return name


@dataclass(frozen=True)
class PrecisionSpec:
    """Types, reuse factors and strategies a user gave (None / absent: not given)."""

    model: dict = field(default_factory=dict)  # key ("default", "weight", ...) -> Fixed | "auto"
    layers: dict = field(default_factory=dict)  # layer name -> {key -> Fixed | "auto"}
    reuse_factor: Optional[int] = None  # the model's
    strategy: Optional[str] = None  # the model's (hwprune spelling)
    layer_reuse: dict = field(default_factory=dict)  # layer name -> int
    layer_strategy: dict = field(default_factory=dict)  # layer name -> hwprune spelling
    source: str = ""  # where it came from, for messages

    @classmethod
    def uniform(cls, text: str) -> "PrecisionSpec":
        """``--precision TYPE``: one type for every tensor."""
        return cls(model={"default": _parse_type(text, "--precision")}, source="--precision")

    def type_for(self, layer: str, key: str) -> Optional[Fixed]:
        """The type given for ``layer``'s ``key``, in hls4ml's lookup order; None to calibrate."""
        own = self.layers.get(layer, {})
        for found in (own.get(key), own.get("default"), self.model.get(key), self.model.get("default")):
            if found is not None:
                return None if found == AUTO else found
        return None

    def constant_type_for(self, layer: str, key: str) -> Optional[Fixed]:
        """A constant's type (``CONSTANT_KEYS``): the layer's entry for ``key``, then the
        model's; no default reaches it. None to calibrate."""
        for found in (self.layers.get(layer, {}).get(key), self.model.get(key)):
            if found is not None:
                return None if found == AUTO else found
        return None

    def given(self, layer: str) -> dict:
        types = {key: self.type_for(layer, key) for key in KEYS}
        types.update((key, self.constant_type_for(layer, key)) for key in CONSTANT_KEYS)
        return types

    def check_layers(self, graph) -> None:
        """OptionError for a layer name the graph does not have, or a type a layer cannot take."""
        inp = input_name(graph)
        known = {layer.name: layer for layer in graph.layers}
        for name in set(self.layers) | set(self.layer_reuse) | set(self.layer_strategy):
            if name == inp:
                bad = [k for k in self.layers.get(name, {}) if k not in ("result", "default")]
                if bad or name in self.layer_reuse or name in self.layer_strategy:
                    raise OptionError(f"{self.source}: the input {name!r} takes a result type only")
                continue
            layer = known.get(name)
            if layer is None:
                raise OptionError(f"{self.source}: no layer named {name!r}; the model has {inp!r} (its input) and "
                                  f"{', '.join(repr(n) for n in known)}")
            keys = {k.removesuffix("_t") for k in layer.types()}
            bad = [k for k in self.layers.get(name, {}) if k != "default" and k not in keys]
            if bad:
                raise OptionError(f"{self.source}: layer {name!r} ({layer.kind}) has no {', '.join(bad)} type; it has "
                                  f"{', '.join(sorted(keys)) or 'none'}")
            if (name in self.layer_reuse or name in self.layer_strategy) and not hasattr(layer, "weight"):
                raise OptionError(f"{self.source}: layer {name!r} ({layer.kind}) has no weights: a reuse factor or "
                                  "strategy applies to weighted layers only")


def _parse_type(value, where: str) -> TypeOrAuto:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if not isinstance(value, str):
        raise OptionError(f"{where}: a type must be a string such as 'fixed<16,6>', got {value!r}")
    try:
        return Fixed.parse(value)
    except FixedPointError as exc:
        raise OptionError(f"{where}: {exc}") from None


def _precision(value, where: str) -> dict:
    if isinstance(value, str):
        return {"default": _parse_type(value, where)}
    if not isinstance(value, dict):
        raise OptionError(f"{where}: Precision must be a type or a mapping of {', '.join(('default',) + ALL_KEYS)}")
    out = {}
    for key, text in value.items():
        if key not in ("default",) + ALL_KEYS:
            raise OptionError(f"{where}: unknown precision key {key!r}; expected {', '.join(('default',) + ALL_KEYS)}")
        out[key] = _parse_type(text, f"{where}.{key}")
    return out


def _reuse(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{where}: ReuseFactor must be a positive integer, got {value!r}")
    return value


def _strategy(value, where: str) -> str:
    name = STRATEGY_NAMES.get(str(value).lower())
    if name is None:
        raise OptionError(f"{where}: Strategy must be Latency, Resource or distributed_arithmetic, got {value!r}")
    return name


def _entry(entry, where: str, allowed: tuple) -> dict:
    if not isinstance(entry, dict):
        raise OptionError(f"{where}: expected a mapping with {', '.join(allowed)}, got {type(entry).__name__}")
    unknown = [k for k in entry if k not in allowed]
    if unknown:
        raise OptionError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(allowed)}")
    return entry


def parse_config(data, source: str) -> PrecisionSpec:
    """A PrecisionSpec from the parsed contents of a configuration file."""
    if isinstance(data, dict) and set(data) == {"HLSConfig"}:
        data = data["HLSConfig"]
    top = _entry(data, source, ("Model", "LayerName"))
    model = _entry(top.get("Model", {}), f"{source}: Model", ("Precision", "ReuseFactor", "Strategy"))
    spec = {"model": _precision(model["Precision"], f"{source}: Model.Precision") if "Precision" in model else {},
            "reuse_factor": _reuse(model["ReuseFactor"], f"{source}: Model.ReuseFactor") if "ReuseFactor" in model
            else None,
            "strategy": _strategy(model["Strategy"], f"{source}: Model.Strategy") if "Strategy" in model else None}
    layers, reuse, strategy = {}, {}, {}
    names = top.get("LayerName", {})
    if not isinstance(names, dict):
        raise OptionError(f"{source}: LayerName must map layer names to their settings")
    for name, entry in names.items():
        where = f"{source}: LayerName.{name}"
        entry = _entry(entry, where, ("Precision", "ReuseFactor", "Strategy"))
        if "Precision" in entry:
            layers[name] = _precision(entry["Precision"], f"{where}.Precision")
        if "ReuseFactor" in entry:
            reuse[name] = _reuse(entry["ReuseFactor"], f"{where}.ReuseFactor")
        if "Strategy" in entry:
            strategy[name] = _strategy(entry["Strategy"], f"{where}.Strategy")
    return PrecisionSpec(layers=layers, layer_reuse=reuse, layer_strategy=strategy, source=source, **spec)


def _check_suffix(path: Path, what: str) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise OptionError(f"{what} {path}: name a {', '.join(SUFFIXES)} file")


def read_config(path) -> PrecisionSpec:
    """A configuration file (YAML, JSON or TOML by its suffix) as a PrecisionSpec."""
    path = Path(path)
    _check_suffix(path, "--config")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise OptionError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"--config {path}: cannot read it ({type(exc).__name__})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise OptionError(f"--config {path}: reading TOML needs Python 3.11 or later; give YAML or "
                                  "JSON") from None

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except OptionError:
        raise
    except Exception as exc:  # json, tomllib and yaml each raise their own error types
        raise OptionError(f"--config {path}: not valid {suffix[1:].upper()} ({str(exc).splitlines()[0]})") from None
    return parse_config(data if data is not None else {}, f"--config {path}")


def chosen_config(graph, strategy: str = "latency", reuse_factor: int = 1, layer_strategy: Optional[dict] = None,
                  layer_reuse: Optional[dict] = None) -> dict:
    """The configuration a quantized graph was exported with, every type explicit (what
    ``--config`` reads back to the same graph)."""
    layer_strategy, layer_reuse = layer_strategy or {}, layer_reuse or {}
    names = {input_name(graph): {"Precision": {"result": str(graph.input_t)}}}
    for layer in graph.layers:
        types = layer.types()
        if not types:
            continue
        entry = {"Precision": {key.removesuffix("_t"): str(t) for key, t in types.items()}}
        if hasattr(layer, "weight"):
            entry["ReuseFactor"] = layer_reuse.get(layer.name, reuse_factor)
            entry["Strategy"] = HLS4ML_STRATEGY[layer_strategy.get(layer.name, strategy)]
        names[layer.name] = entry
    return {"Model": {"Precision": str(graph.input_t), "ReuseFactor": reuse_factor,
                      "Strategy": HLS4ML_STRATEGY[strategy]}, "LayerName": names}


def config_text(config: dict, path) -> str:
    """``config`` in the format ``path``'s suffix names (YAML or JSON; TOML is read only)."""
    path = Path(path)
    _check_suffix(path, "--write-config")
    if path.suffix.lower() == ".toml":
        raise OptionError(f"--write-config {path}: hwprune reads TOML but writes YAML or JSON; name a .yaml or .json file")
    if path.suffix.lower() == ".json":
        return json.dumps(config, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
