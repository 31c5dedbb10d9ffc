"""The hls4ml backend in the backend registry: ``DIR/hls4ml/``, a project for an FPGA."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import ranges
from hwprune.backends.hls4ml.iotype import resolve_io_type
from hwprune.backends.hls4ml.project import export_hls4ml
from hwprune.backends.hls4ml.target import check_fpga_target, hls_options
from hwprune.backends.registry import BackendContext, register_backend
from hwprune.errors import FolderError, OptionError
from hwprune.exportdir import EXPORT_FILE, HLS4ML_DIR, read_vectors
from hwprune.hls4ml_options import HlsOptions, options_from_json
from hwprune.ir.graph import Graph
from hwprune.reference import run
from hwprune.targets import Target

# hls4ml's own default type is ap_fixed<16,6>; at 16 bits hwprune's calibrated types keep the
# float model's argmax on all 1,000 test inputs of every shared hls4ml example model, where
# 8 bits lose 3 to 6 % on the denser ones (docs/hls4ml.md). DSPs take 16-bit products anyway.
DEFAULT_HLS4ML_BITS = 16


_FLAGS = (("--strategy", "strategy"), ("--reuse-factor", "reuse_factor"), ("--part", "part"),
          ("--hls-tool", "tool"), ("--weight-storage", "storage"), ("--io-type", "io_type"))


class Hls4mlBackend:
    name = "hls4ml"
    description = "an hls4ml project in DIR/hls4ml/ too (C simulation checked)"
    options_type = HlsOptions
    default_bits = DEFAULT_HLS4ML_BITS

    def add_arguments(self, p) -> None:
        p.add_argument("--strategy", choices=["latency", "resource", "da"],
                       help="hls4ml strategy: latency (default), resource (weights in memory) or da (distributed "
                            "arithmetic, da4ml)")
        p.add_argument("--reuse-factor", type=ranges.REUSE_FACTOR,
                       help=f"hls4ml reuse factor, 1 to {ranges.MAX_REUSE} (default 1)")
        p.add_argument("--part", help="FPGA part (default: the --target's part, else xcvu13p-flga2577-2-e)")
        p.add_argument("--io-type", choices=["parallel", "stream", "auto"],
                       help="hls4ml I/O: parallel (arrays), stream (hls::stream between layers) or auto (the default: "
                            "stream when the convolutions' im2col code would be large, as for ResNet-8 on 32x32, "
                            "else parallel)")
        p.add_argument("--hls-tool", choices=["Vitis", "Vivado"], help="HLS tool the project is for (default Vitis)")
        p.add_argument("--weight-storage", choices=["auto", "dense", "compressed"],
                       help="resource strategy: weights dense, compressed (nonzeros only) or the smaller per layer")

    def options_from_args(self, args, target: Optional[Target], spec, chosen: bool) -> Optional[HlsOptions]:
        """The flags over the configuration's over the FPGA target's defaults."""
        fpga = {"strategy": args.strategy, "reuse_factor": args.reuse_factor, "part": args.part,
                "tool": args.hls_tool, "storage": args.weight_storage, "io_type": args.io_type}
        if chosen:
            return hls_options(target, **fpga, spec=spec)
        given = [flag for flag, key in _FLAGS if fpga[key] is not None]
        if given:
            raise OptionError(f"{', '.join(given)}: FPGA options, for --backend hls4ml only")
        return None

    def check(self, graph: Graph, options: HlsOptions, target: Optional[Target]) -> None:
        if target is not None:  # an hls4ml project is built for an FPGA target only
            check_fpga_target(target)

    def write(self, folder: Path, options: HlsOptions, context: BackendContext) -> dict:
        options = resolve_io_type(context.graph, options)  # export.json names the I/O type the project has
        export_hls4ml(context.graph, folder / HLS4ML_DIR, options, context.x_int, context.y_int)
        return {"hls4ml": options.to_json()}

    def regenerate(self, folder: Path, graph: Graph, meta: dict, tmp: Path) -> Optional[str]:
        """``hls4ml/`` written again into ``tmp`` when the export ``folder`` has a project."""
        if "hls4ml" not in meta and not (folder / HLS4ML_DIR).exists():
            return None
        options = meta.get("hls4ml")
        if not isinstance(options, dict):
            raise FolderError(f"{folder}: an {HLS4ML_DIR}/ project but no hls4ml options in {EXPORT_FILE}; "
                              "run hwprune export again")
        try:
            hls = options_from_json(options)
        except (TypeError, ValueError) as exc:
            raise FolderError(f"{folder / EXPORT_FILE}: unreadable hls4ml options ({exc})") from None
        x_int = np.asarray(read_vectors(folder, graph)["x_int"], dtype=np.int64)
        # The testbench holds the reference's outputs, as the export computed them (verify
        # compares the stored ones with the reference separately).
        export_hls4ml(graph, tmp / HLS4ML_DIR, hls, x_int, run(graph, x_int))
        return HLS4ML_DIR


HLS4ML_BACKEND = register_backend(Hls4mlBackend())
