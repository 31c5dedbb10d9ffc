"""Cycles of every storage format for every weighted layer, measured in the emulator.

``export --optimize speed`` chooses per layer the format with the fewest cycles among
those that fit the target's flash. With a Cortex-M target and the cross toolchain at
hand, the cycles are measured rather than estimated: the model is exported once per
format (every layer in that format where it applies, else dense), each firmware run in
the ``mcu`` engine on a few test vectors, and a layer's cycles in a format read from the
engine's per-layer counts (a kernel's cost does not depend on the formats of the other
layers). One build per format, however many layers. Without the toolchain the C backend
falls back to ``backends.c.cost``'s model, and says so. ``pipeline.write_export`` asks
``measured_speeds`` and hands its cycles to the backends (``BackendContext.measured_cycles``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.backends.c import cost, export_c
from hwprune.backends.c.formats import FORMATS, FormatNotApplicable, encode, usable_formats
from hwprune.backends.c.options import COptions
from hwprune.harness.mcu import McuEngine, measure_mcu
from hwprune.ir.graph import Graph
from hwprune.targets import Target
from hwprune.tempdirs import temp_dir

MEASURED = cost.MEASURED  # what export.json says the cycles are
VECTORS = 2


def measured_speeds(graph: Graph, target: Target, x_int: np.ndarray, options: COptions) -> Optional[dict]:
    """Cycles per (layer, format) from the emulator for the C backend's ``--optimize speed``,
    when the target is a Cortex-M chip and the toolchain is here; else None (the cost model)."""
    if options.optimize != "speed" or options.format != "auto" or target.kind != "mcu":
        return None
    if McuEngine(target=target, cc=options.cc).unavailable_reason():
        return None
    return measure_formats(graph, target, x_int, cc=options.cc)


def measure_formats(graph: Graph, target: Target, x_int: np.ndarray, cc: Optional[str] = None,
                    formats=None) -> dict[tuple[str, str], float]:
    """``{(layer name, format): cycles per inference}`` for every weighted layer and every
    format that applies to it (a format that does not apply is simply absent)."""
    layers = graph.weighted_layers()
    shapes = {l.name: graph.input_shapes(l)[0] for l in graph.layers}
    x = np.asarray(x_int)[:VECTORS]
    cycles: dict[tuple[str, str], float] = {}
    for fmt in formats or FORMATS:
        if not FORMATS[fmt].in_auto:
            continue
        chosen = {layer.name: fmt if _applies(layer, fmt, shapes[layer.name]) else "dense" for layer in layers}
        if fmt != "dense" and all(f == "dense" for f in chosen.values()):
            continue
        with temp_dir("speed") as tmp:  # carries the pid: a killed run's folder is removed later
            export_c(graph, Path(tmp), chosen)
            measured = measure_mcu(tmp, target, x_int=x, cc=cc)
        by_name = {layer.name: layer.cycles for layer in measured.layers}
        for layer in layers:
            if chosen[layer.name] == fmt:
                cycles[(layer.name, fmt)] = by_name[layer.name]
    return cycles


def _applies(layer, fmt: str, input_shape=None) -> bool:
    """The layer's kind has a kernel in ``fmt`` and its weights have the structure."""
    if fmt not in usable_formats(layer):
        return False
    try:
        encode(layer, fmt, input_shape)
    except FormatNotApplicable:
        return False
    return True
