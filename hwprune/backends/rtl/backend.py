"""The RTL backend in the backend registry: ``DIR/rtl/``, pipelined Verilog (da4ml)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.backends.c.options import DEFAULT_BITS
from hwprune.backends.registry import BackendContext, register_backend
from hwprune.backends.rtl.project import RtlOptions, export_rtl
from hwprune.backends.rtl.trace import check_supported
from hwprune.errors import FolderError, OptionError
from hwprune.exportdir import EXPORT_FILE, RTL_DIR, read_vectors
from hwprune.fpga.da import require_da4ml
from hwprune.ir.graph import Graph
from hwprune.reference import run
from hwprune.targets import Target


class RtlBackend:
    name = "rtl"
    description = "pipelined Verilog in DIR/rtl/ too (da4ml; simulated with verilator when installed)"
    options_type = RtlOptions
    default_bits = DEFAULT_BITS  # LUT adder graphs grow with the width; the C's 8 bits

    def add_arguments(self, p) -> None:
        p.add_argument("--clock-mhz", type=float, metavar="MHZ",
                       help="--backend rtl: the clock the pipeline is cut for (default: the FPGA --target's clock, "
                            "else 200)")

    def options_from_args(self, args, target: Optional[Target], spec, chosen: bool) -> Optional[RtlOptions]:
        """da4ml is checked here, before any work."""
        if not chosen:
            if args.clock_mhz is not None:
                raise OptionError("--clock-mhz: the clock of --backend rtl's pipeline, for --backend rtl only")
            return None
        require_da4ml()
        clock = args.clock_mhz or (target.clock_mhz if target is not None and target.kind == "fpga" else None)
        return RtlOptions(clock_mhz=clock) if clock else RtlOptions()

    def check(self, graph: Graph, options: RtlOptions, target: Optional[Target]) -> None:
        check_supported(graph)  # a layer the RTL cannot map fails before any work

    def write(self, folder: Path, options: RtlOptions, context: BackendContext) -> dict:
        export_rtl(context.graph, folder / RTL_DIR, options, context.x_int, context.y_int)
        return {"rtl": options.to_json()}

    def regenerate(self, folder: Path, graph: Graph, meta: dict, tmp: Path) -> Optional[str]:
        """``rtl/`` (what Verilator compiles) written again into ``tmp`` when the export
        ``folder`` has it."""
        if "rtl" not in meta and not (folder / RTL_DIR).exists():
            return None
        options = meta.get("rtl")
        if not isinstance(options, dict):
            raise FolderError(f"{folder}: an {RTL_DIR}/ folder but no rtl options in {EXPORT_FILE}; "
                              "run hwprune export again")
        try:
            rtl = RtlOptions(**options)
        except TypeError as exc:
            raise FolderError(f"{folder / EXPORT_FILE}: unreadable rtl options ({exc})") from None
        x_int = np.asarray(read_vectors(folder, graph)["x_int"], dtype=np.int64)
        export_rtl(graph, tmp / RTL_DIR, rtl, x_int, run(graph, x_int))
        return RTL_DIR


RTL_BACKEND = register_backend(RtlBackend())
