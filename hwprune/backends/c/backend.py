"""The C backend in the backend registry: ``DIR/c/`` from the quantized graph.

It sits beside ``backends.c`` rather than in it because ``--optimize speed`` measures each
format's cycles in the Cortex-M emulator (``harness.format_speed``), and the harness
itself builds on ``backends.c``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.backends.c import export_c
from hwprune.backends.c.options import DEFAULT_BITS, COptions
from hwprune.backends.registry import BackendContext, register_backend
from hwprune.errors import OptionError
from hwprune.exportdir import C_DIR
from hwprune.harness.build import find_cc
from hwprune.harness.format_speed import measure_formats
from hwprune.harness.mcu import McuEngine
from hwprune.ir.graph import Graph
from hwprune.targets import Target


class CBackend:
    name = "c"
    description = "C sources only"
    options_type = COptions
    default_bits = DEFAULT_BITS

    def check(self, graph: Graph, options: COptions, target: Optional[Target]) -> None:
        if options.cc is not None and (target is None or target.kind != "mcu"):
            raise OptionError(f"--cc {options.cc} chooses the Cortex-M cross compiler; it needs a Cortex-M --target "
                              f"(hwprune targets), got {target.name if target else 'none'}")
        if options.compile:
            find_cc()  # a missing compiler fails before anything is written

    def write(self, folder: Path, options: COptions, context: BackendContext) -> dict:
        measured = (_measured_speeds(context.graph, context.target, context.x_int, options)
                    if options.optimize == "speed" else None)
        exported = export_c(context.graph, folder / C_DIR, options.format, options.optimize, context.target,
                            measured, graph_dir=context.graph_dir)
        return {"format_policy": options.format, "optimize": options.optimize,
                "formats": {s.name: s.format for s in exported.layers}, "compiled": options.compile,
                **({"cc": options.cc} if options.cc else {})}  # verify and report measure with the same compiler


def _measured_speeds(graph: Graph, target: Target, x_int: np.ndarray, options: COptions) -> Optional[dict]:
    """Cycles per (layer, format) from the emulator for ``--optimize speed``, when the
    target is a Cortex-M chip and the toolchain is here; else None (the cost model)."""
    if target.kind != "mcu" or options.format != "auto":
        return None
    if McuEngine(target=target, cc=options.cc).unavailable_reason():
        return None
    return measure_formats(graph, target, x_int, cc=options.cc)


C_BACKEND = register_backend(CBackend())
