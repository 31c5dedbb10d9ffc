"""The format of every weighted layer of a graph, by policy and goal (``--format``,
``--optimize``): it weighs each candidate's bytes against the cycles ``cost`` predicts or
the emulator measured, so it sits above both the format registry and the cost model."""

from __future__ import annotations

from typing import Mapping, Optional

from hwprune.backends.c import cost
from hwprune.backends.c.formats.core import OPTIMIZE, FormatSpec, LayerStorage, candidates, choose_format
from hwprune.errors import OptionError
from hwprune.ir.graph import Graph


def choose_formats(graph: Graph, formats: FormatSpec = "auto", optimize: str = "balanced", core: str = "cortex-m4",
                   flash_budget: Optional[int] = None,
                   measured: Optional[Mapping[tuple[str, str], float]] = None) -> list[LayerStorage]:
    """Every weighted layer encoded: one policy for all, or ``{layer name: policy}`` with
    ``auto`` for the layers not named (an ``"*"`` key sets that default).

    ``auto`` picks per layer the fewest weight bytes (``optimize="size"``); with
    ``"speed"`` the fewest cycles on ``core`` among the formats whose weights, all layers
    together, fit ``flash_budget`` bytes; with ``"balanced"`` the smallest product of
    weight bytes and cycles (neither a format that saves bytes by running several times
    slower, nor one that buys speed with several times the bytes). Cycles are
    ``measured`` per ``(layer, format)`` (``harness.format_speed``) where given, else the
    instructions of ``cost``'s model."""
    if optimize not in OPTIMIZE:
        raise OptionError(f"--optimize must be one of {list(OPTIMIZE)}, got {optimize!r}")
    dense = graph.weighted_layers()
    if isinstance(formats, str):
        per_layer, default = {}, formats
    else:
        per_layer = dict(formats)
        default = per_layer.pop("*", "auto")
        names = {l.name for l in dense}
        unknown = sorted(set(per_layer) - names)
        if unknown:
            raise OptionError(
                f"format given for {unknown}, which {'is not a weighted layer' if len(unknown) == 1 else 'are not weighted layers'} "
                f"of model {graph.name!r}; its weighted layers are {[l.name for l in dense]}"
            )
    policy = {l.name: per_layer.get(l.name, default) for l in dense}
    shape = {name: graph.input_shape_of_layer(name) for name in policy}
    if optimize == "size":
        return [choose_format(layer, policy[layer.name], shape[layer.name]) for layer in dense]
    if optimize == "balanced":
        def bytes_times_cycles(s: LayerStorage) -> float:
            work = measured.get((s.name, s.format)) if measured is not None else None
            return s.weight_bytes * (work if work is not None else cost.instructions(s, core))

        return [choose_format(l, policy[l.name], shape[l.name]) if policy[l.name] != "auto"
                else min(candidates(l, shape[l.name]), key=bytes_times_cycles) for l in dense]

    fixed = {l.name: choose_format(l, policy[l.name], shape[l.name]) for l in dense if policy[l.name] != "auto"}
    free = [l for l in dense if policy[l.name] == "auto"]
    budget = None if flash_budget is None else flash_budget - sum(s.weight_bytes for s in fixed.values())
    options = [candidates(l, shape[l.name]) for l in free]
    if measured is not None:
        options = [[s for s in c if (s.name, s.format) in measured] or c for c in options]
        cost_of = lambda s: measured.get((s.name, s.format), cost.instructions(s, core))  # noqa: E731
    else:
        cost_of = None
    fast = dict(zip((l.name for l in free), cost.choose_for_speed(options, core, budget, cost_of)))
    return [fixed.get(l.name) or fast[l.name] for l in dense]
