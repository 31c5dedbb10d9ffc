"""Options of an hls4ml export: strategy, reuse factor, FPGA part, HLS tool, I/O type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from hwprune.errors import OptionError

STRATEGIES = {"latency": "Latency", "resource": "Resource", "da": "distributed_arithmetic"}
TOOLS = ("Vitis", "Vivado")
IO_TYPES = ("io_parallel", "io_stream")
#: the short names of the command line (--io-type) and of target files (io_type = "stream")
IO_NAMES = {"parallel": "io_parallel", "stream": "io_stream"}
#: the I/O type chosen per graph at export (``iotype.resolve_io_type``): the default
AUTO_IO = "auto"
STORAGES = ("auto", "dense", "compressed")
DEFAULT_PART = "xcvu13p-flga2577-2-e"  # hls4ml's own default part (Virtex UltraScale+)

# AMD/Xilinx part numbers: xc + family + device, then package and speed grade, e.g.
# xc7z020clg400-1, xcvu13p-flga2577-2-e, xczu9eg-ffvb1156-2-e, xcku115-flvb2104-2-e.
_FAMILIES = ("7a", "7k", "7v", "7s", "7z", "ku", "vu", "zu", "au", "vc", "ve", "vp", "vm", "vh", "k26", "k24", "kv", "u")
_PART = re.compile(r"xc(?:" + "|".join(_FAMILIES) + r")[0-9a-z]*?(?:-?[a-z]{2,5}\d{2,4})-[0-9]+l?(?:-[a-z])?")


def check_part(part: str) -> str:
    """``part`` when it reads as an AMD/Xilinx part number, else an OptionError."""
    text = str(part).strip()
    if not _PART.fullmatch(text.lower()):
        raise OptionError(
            f"unknown FPGA part {part!r}; give an AMD/Xilinx part number such as {DEFAULT_PART} or xc7z020clg400-1"
        )
    return text


def check_strategy(strategy: str, reuse_factor: int) -> None:
    """OptionError unless ``strategy`` is one of hls4ml's and ``reuse_factor`` suits it
    (shared by the backend and the FPGA resource estimate)."""
    if strategy not in STRATEGIES:
        raise OptionError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if not isinstance(reuse_factor, int) or reuse_factor < 1:
        raise OptionError(f"--reuse-factor must be a positive integer, got {reuse_factor!r}")
    if strategy == "da" and reuse_factor != 1:
        raise OptionError("the da strategy (distributed arithmetic) is fully parallel: it runs with --reuse-factor 1 only")


def pick_strategy(strategy: Optional[str], reuse_factor: Optional[int], default_strategy: Optional[str],
                  default_reuse: Optional[int]) -> tuple[str, int]:
    """The strategy and reuse factor from what the command line gave (None: not given) and
    the defaults (a target file's, an export's). A default reuse factor goes with its own
    strategy: ``--strategy da`` on a target that defaults to resource with reuse 4 runs
    with reuse 1, not 4. Shared by ``export --backend hls4ml`` and ``resources``."""
    chosen = strategy or default_strategy or "latency"
    if reuse_factor is not None:
        return chosen, reuse_factor
    same = strategy is None or strategy == (default_strategy or "latency")
    return chosen, (default_reuse if same and default_reuse is not None else 1)


@dataclass(frozen=True)
class HlsOptions:
    strategy: str = "latency"
    reuse_factor: int = 1
    part: str = DEFAULT_PART
    tool: str = "Vitis"
    #: io_parallel, io_stream, or auto: chosen from the graph when the project is written
    #: (``iotype.py``); a written project's options always name the one it got
    io_type: str = AUTO_IO
    clock_period_ns: float = 5.0
    #: Resource strategy: weight storage per layer; compressed keeps only the nonzero
    #: weights (hwprune's COO kernel), auto picks the smaller per layer.
    storage: str = "auto"
    #: the target file the part and defaults came from (``--target``), None without one
    target: Optional[str] = None
    #: per-layer settings from a configuration file (``--config``): (name, strategy, reuse factor),
    #: None for what the layer takes from the model-wide values
    layers: tuple = ()

    def __post_init__(self) -> None:
        check_strategy(self.strategy, self.reuse_factor)
        object.__setattr__(self, "layers", tuple(sorted((str(n), s, r) for n, s, r in self.layers)))
        for name, _, _ in self.layers:
            try:
                check_strategy(self.strategy_of(name), self.reuse_of(name))
            except OptionError as exc:
                raise OptionError(f"layer {name!r}: {exc}") from None
        if self.tool not in TOOLS:
            raise OptionError(f"the HLS tool must be one of {', '.join(TOOLS)}, got {self.tool!r}")
        object.__setattr__(self, "io_type", IO_NAMES.get(self.io_type, self.io_type))
        if self.io_type not in (*IO_TYPES, AUTO_IO):
            raise OptionError(f"--io-type must be one of {', '.join((*IO_NAMES, AUTO_IO))}, got {self.io_type!r}")
        if self.storage not in STORAGES:
            raise OptionError(f"--weight-storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        if not self.clock_period_ns > 0:
            raise OptionError(f"the clock period must be positive, got {self.clock_period_ns}")
        object.__setattr__(self, "part", check_part(self.part))

    @property
    def hls4ml_strategy(self) -> str:
        return STRATEGIES[self.strategy]

    def strategy_of(self, layer: str) -> str:
        return next((s for n, s, _ in self.layers if n == layer and s is not None), self.strategy)

    def reuse_of(self, layer: str) -> int:
        return next((r for n, _, r in self.layers if n == layer and r is not None), self.reuse_factor)

    def strategies(self) -> set:
        """Every strategy some layer uses."""
        return {self.strategy} | {s for _, s, _ in self.layers if s is not None}

    def to_json(self) -> dict:
        out = {"strategy": self.strategy, "reuse_factor": self.reuse_factor, "part": self.part, "tool": self.tool,
               "io_type": self.io_type, "clock_period_ns": self.clock_period_ns, "storage": self.storage,
               "target": self.target}
        if self.layers:
            out["layers"] = layer_settings(self.layers)
        return out


def layer_settings(layers) -> dict:
    """(name, strategy, reuse factor) triples as export.json stores them."""
    return {n: {k: v for k, v in (("strategy", s), ("reuse_factor", r)) if v is not None} for n, s, r in layers}


def options_from_json(stored: dict) -> "HlsOptions":
    """The HlsOptions an export recorded (``export.json``'s ``hls4ml``, a project summary's
    ``options``); TypeError or ValueError when they are not options this version writes."""
    stored = dict(stored)
    layers = layers_from_json(stored.pop("layers", {}))
    return HlsOptions(**stored, layers=layers)


def layers_from_json(settings) -> tuple:
    """The inverse of ``layer_settings`` (export.json -> (name, strategy, reuse factor))."""
    if not isinstance(settings, dict):
        return ()
    return tuple((n, v.get("strategy"), v.get("reuse_factor")) for n, v in settings.items() if isinstance(v, dict))
