"""The C backend in the backend registry: ``DIR/c/`` from the quantized graph.

``--optimize speed`` chooses formats by the cycles the Cortex-M emulator measured
(``harness.format_speed``, which builds on ``backends.c``): the pipeline measures them and
hands them over in ``BackendContext.measured_cycles``; without them, the cost model decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from hwprune.backends.c import MANIFEST as C_MANIFEST, export_c
from hwprune.backends.c_int8 import write_int8_c
from hwprune.backends.c_int8_plan import WIDE_WEIGHTS_KEY
from hwprune.backends.c.formats import OPTIMIZE, policies
from hwprune.backends.c.options import DEFAULT_BITS, COptions
from hwprune.backends.registry import BackendContext, register_backend
from hwprune.errors import FolderError, OptionError
from hwprune.exportdir import C_DIR, EXPORT_FILE
from hwprune.ir.graph import Graph
from hwprune.ir.int8 import is_int8_graph
from hwprune.targets import Target, export_target


class CBackend:
    name = "c"
    description = "C sources only"
    options_type = COptions
    default_bits = DEFAULT_BITS

    def add_arguments(self, p) -> None:
        p.add_argument("--format", default="auto", choices=list(policies()),
                       help="weight storage of every weighted layer (auto: chosen per layer by --optimize)")
        p.add_argument("--optimize", default="balanced", choices=list(OPTIMIZE),
                       help="what auto chooses per layer: the smallest product of weight bytes and cycles (balanced, "
                            "the default: a format that saves bytes but runs several times slower loses), the fewest "
                            "weight bytes (size), or the fewest cycles on the target's core among formats whose "
                            "weights fit its flash (speed: measured in the Cortex-M emulator, one build per format); "
                            "cycles come from a per-format cost model fitted on the emulator unless measured")
        p.add_argument("--cc", choices=["clang", "gcc"],
                       help="Cortex-M cross compiler (default: $HWPRUNE_MCU_CC, else clang from the ziglang package)")
        p.add_argument("--no-compile", action="store_true",
                       help="write the C sources without compiling or verifying them (no C compiler needed; run "
                            "hwprune verify DIR later)")

    def options_from_args(self, args, target: Optional[Target], spec, chosen: bool) -> COptions:
        """Every export writes the C (beside an hls4ml project or RTL too)."""
        return COptions(format=args.format, optimize=args.optimize, cc=args.cc, compile=not args.no_compile)

    def check(self, graph: Graph, options: COptions, target: Optional[Target]) -> None:
        if options.cc is not None and (target is None or target.kind != "mcu"):
            raise OptionError(f"--cc {options.cc} chooses the Cortex-M cross compiler; it needs a Cortex-M --target "
                              f"(hwprune targets), got {target.name if target else 'none'}")

    def write(self, folder: Path, options: COptions, context: BackendContext) -> dict:
        exported = export_c(context.graph, folder / C_DIR, options.format, options.optimize, context.target,
                            context.measured_cycles, graph_dir=context.graph_dir)
        return {"format_policy": options.format, "optimize": options.optimize,
                "formats": {s.name: s.format for s in exported.layers}, "compiled": options.compile,
                **({"cc": options.cc} if options.cc else {})}  # verify and report measure with the same compiler

    def regenerate(self, folder: Path, graph: Graph, meta: dict, tmp: Path) -> Optional[str]:
        """``c/`` written again into ``tmp`` from the export ``folder``'s graph and export.json
        (every export has it: the host engine compiles it)."""
        if is_int8_graph(graph):  # TFLite's int8 dialect: one source, no format choice
            write_int8_c(graph, tmp / C_DIR, meta.get(WIDE_WEIGHTS_KEY) is True)
            return C_DIR
        formats = meta.get("formats", {})
        optimize = meta.get("optimize", "balanced")
        if not isinstance(formats, dict) or not all(isinstance(v, str) for v in formats.values()):
            raise FolderError(f"{folder / EXPORT_FILE}: \"formats\" must map layer names to format names")
        try:
            target, _ = export_target(meta)
        except (TypeError, ValueError) as exc:
            raise FolderError(f"{folder / EXPORT_FILE}: unreadable target_spec ({exc})") from None
        # The formats the export chose, per layer: encoding a layer in a named format is
        # deterministic, so the choice (cost model, measured cycles) need not be repeated.
        export_c(graph, tmp / C_DIR, dict(formats), optimize, target, _recorded_speeds(folder, optimize),
                 graph_dir=tmp)
        return C_DIR


def _recorded_speeds(folder: Path, optimize: str) -> Optional[dict]:
    """The cycles ``--optimize speed`` measured in the emulator, as c/export.json records
    them (they are only printed back into that file)."""
    if optimize != "speed":
        return None
    try:
        recorded = json.loads((folder / C_DIR / C_MANIFEST).read_text()).get("optimize", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None  # the comparison names the file
    cycles = recorded.get("measured_cycles") if isinstance(recorded, dict) else None
    if not isinstance(cycles, dict):
        return None
    out = {}
    for key, value in cycles.items():
        layer, _, fmt = str(key).rpartition(":")
        if not layer or not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        out[(layer, fmt)] = value
    return out


C_BACKEND = register_backend(CBackend())
