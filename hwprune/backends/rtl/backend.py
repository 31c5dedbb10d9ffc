"""The RTL backend in the backend registry: ``DIR/rtl/``, pipelined Verilog (da4ml)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hwprune.backends.c.options import DEFAULT_BITS
from hwprune.backends.registry import BackendContext, register_backend
from hwprune.backends.rtl.project import RtlOptions, export_rtl
from hwprune.backends.rtl.trace import check_supported
from hwprune.exportdir import RTL_DIR
from hwprune.ir.graph import Graph
from hwprune.targets import Target


class RtlBackend:
    name = "rtl"
    description = "pipelined Verilog in DIR/rtl/ too (da4ml; simulated with verilator when installed)"
    options_type = RtlOptions
    default_bits = DEFAULT_BITS  # LUT adder graphs grow with the width; the C's 8 bits

    def check(self, graph: Graph, options: RtlOptions, target: Optional[Target]) -> None:
        check_supported(graph)  # a layer the RTL cannot map fails before any work

    def write(self, folder: Path, options: RtlOptions, context: BackendContext) -> dict:
        export_rtl(context.graph, folder / RTL_DIR, options, context.x_int, context.y_int)
        return {"rtl": options.to_json()}


RTL_BACKEND = register_backend(RtlBackend())
