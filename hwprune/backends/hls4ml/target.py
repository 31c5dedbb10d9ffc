"""hls4ml options from an FPGA target file and the command line.

An FPGA target (``targets/*.toml``, kind "fpga") gives the part, the clock and optional
defaults for strategy, reuse factor and I/O type; a flag given on the command line
overrides the target's value. Without a target, the flags and HlsOptions' defaults apply
(``--part`` alone keeps working). A target that is not an FPGA cannot take an hls4ml
project: that is an error, not a silent fallback to some default part.
"""

from __future__ import annotations

from typing import Optional

from hwprune.errors import OptionError, TargetError
from hwprune.hls4ml_options import HlsOptions, pick_strategy
from hwprune.targets import Target, available_targets


def check_fpga_target(target: Target) -> None:
    """TargetError unless ``target`` is an FPGA (an hls4ml project is built for one)."""
    if target.kind != "fpga":
        fpgas = ", ".join(n for n, t in available_targets().items() if t.kind == "fpga")
        raise TargetError(f"--backend hls4ml builds for an FPGA, and target {target.name!r} is not one (kind "
                          f"{target.kind!r}); give an FPGA target ({fpgas}) or --part PART")


def hls_options(target: Optional[Target], strategy: Optional[str] = None, reuse_factor: Optional[int] = None,
                part: Optional[str] = None, tool: Optional[str] = None, storage: Optional[str] = None,
                io_type: Optional[str] = None, spec=None) -> HlsOptions:
    """HlsOptions from the command line's values (None: not given) over a configuration
    file's (``spec``, a ``quant.precision.PrecisionSpec``: its model-wide strategy and reuse
    factor, and its per-layer ones) over ``target``'s."""
    if spec is not None:
        strategy = strategy or spec.strategy
        reuse_factor = reuse_factor if reuse_factor is not None else spec.reuse_factor
    given = {"tool": tool, "storage": storage}
    if target is None:
        chosen, reuse = pick_strategy(strategy, reuse_factor, None, None)
        given.update(part=part, io_type=io_type)
    else:
        check_fpga_target(target)
        if part is None and target.part is None:
            raise TargetError(f"target {target.name!r} names no FPGA part: add part = \"...\" (the full AMD part "
                              "number) to its file, or pass --part PART")
        chosen, reuse = pick_strategy(strategy, reuse_factor, target.strategy, target.reuse_factor)
        given.update(part=part or target.part, io_type=io_type or target.io_type, target=target.name,
                     clock_period_ns=1000.0 / float(target.clock_mhz))
    if storage is not None and chosen != "resource":
        raise OptionError(f"--weight-storage {storage}: weights are stored in memory with the resource strategy only; "
                          f"with {chosen} they are constants in the logic (add --strategy resource)")
    if spec is not None:
        names = sorted(set(spec.layer_strategy) | set(spec.layer_reuse))
        given["layers"] = tuple((n, spec.layer_strategy.get(n), spec.layer_reuse.get(n)) for n in names)
    return HlsOptions(strategy=chosen, reuse_factor=reuse, **{k: v for k, v in given.items() if v is not None})
