"""The C backend: a quantized graph to plain C99 (``model.h``, ``model.c``, weights).

``export_c(graph, out_dir, formats)`` writes::

    model.h            <name>_predict(), sizes, input/output typedefs
    model.c            one static kernel per layer, one static activation arena
    model_weights.h    const weight, index, pointer and bias arrays
    hwprune_fixed.h    the fixed-point casts (copied verbatim)
    hwprune_float.h    float <-> fixed conversions for the firmware helpers (copied verbatim)
    export.json        what was exported: layers, value types, storage figures, and where
                       the quantized graph (the reference verify uses) lies
    graph/             that graph (ir.io format), unless the caller stores it elsewhere:
                       an export folder keeps it once, at its top (``"graph": ".."``)

The first five are all a firmware build needs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import hwprune
from hwprune.backends.c import cost
from hwprune.backends.c.formats import FORMATS, FormatSpec, LayerStorage, choose_format, choose_formats, encode
from hwprune.backends.c.plan import ModelPlan, plan_model
from hwprune.backends.c.render import render
from hwprune.errors import ModelError
from hwprune.ir.graph import Graph
from hwprune.ir.io import load_graph, save_graph
from hwprune.paths import templates_dir

MANIFEST = "export.json"
GRAPH_DIR = "graph"
MANIFEST_FORMAT = "hwprune-c-export"
# Hand-written headers copied verbatim into every export.
COPIED_HEADERS = ("hwprune_fixed.h", "hwprune_float.h")
C_SOURCES = ("model.h", "model_weights.h", "model.c", *COPIED_HEADERS)

__all__ = [
    "CExport", "export_c", "load_export", "LayerStorage", "FORMATS", "choose_format", "choose_formats", "encode",
]


@dataclass(frozen=True, eq=False)
class CExport:
    """What ``export_c`` wrote."""

    out_dir: Path
    model: str
    files: tuple[Path, ...]
    layers: tuple[LayerStorage, ...]

    @property
    def weight_bytes(self) -> int:
        return sum(s.weight_bytes for s in self.layers)

    @property
    def bias_bytes(self) -> int:
        return sum(s.bias_bytes for s in self.layers)

    @property
    def nonzero_weights(self) -> int:
        return sum(s.nonzero_weights for s in self.layers)

    @property
    def bits_per_nonzero(self) -> float:
        return self.weight_bytes * 8 / max(self.nonzero_weights, 1)

    @property
    def formats(self) -> dict[str, str]:
        return {s.name: s.format for s in self.layers}


def _manifest(plan: ModelPlan, storages: list[LayerStorage], graph_location: str) -> dict:
    g = plan.graph
    fused_into = {s.out_layer: s.layer.name for s in plan.steps if s.fused}
    return {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "graph": graph_location,
        "hwprune_version": hwprune.__version__,
        "model": g.name,
        "input_size": plan.input.size,
        "output_size": plan.output.size,
        "input_t": str(g.input_t),
        "output_t": str(g.output_t),
        "input_c_type": plan.input.c_type,
        "output_c_type": plan.output.c_type,
        "activation_bytes": plan.arena_bytes,
        "arena_bytes": plan.arena_bytes,
        # What the liveness plan is measured against: no arena can be smaller than the most
        # bytes live at one step, nor than one layer's inputs and output in the arena.
        "arena_live_bound_bytes": plan.arena_live_bound,
        "arena_io_bound_bytes": plan.arena_io_bound,
        "arena_never_reuse_bytes": plan.arena_never_reuse,
        "layers": [
            {"index": s.index, "name": s.layer.name, "kind": s.layer.kind, "inputs": list(s.layer.inputs),
             "size": s.dest.size, "type": str(s.dest.t), "c_type": s.dest.c_type, "code": s.function is not None,
             **({"fused_into": fused_into[s.layer.name]} if s.layer.name in fused_into and s.function is None else {})}
            for s in plan.steps
        ],
        "storage": [s.summary() for s in storages],
        "weight_bytes": sum(s.weight_bytes for s in storages),
        "bias_bytes": sum(s.bias_bytes for s in storages),
    }


# Flash kept free for code other than weights (kernels, start-up, the user's firmware)
# when ``--optimize speed`` fits weights into a target's flash.
CODE_ALLOWANCE_BYTES = 32 * 1024


def export_c(graph: Graph, out_dir, formats: FormatSpec = "auto", optimize: str = "balanced", target=None,
             measured=None, graph_dir=None) -> CExport:
    """Write the C sources of a quantized ``graph`` into ``out_dir`` (created if needed).

    ``formats``: ``"auto"`` (chosen per layer by ``optimize``, on ``target``'s core: see
    ``formats.choose_formats``), a format name for every weighted layer, or ``{layer
    name: policy}`` (``"*"``: default).
    ``measured``: cycles per ``(layer, format)`` from ``harness.format_speed`` for
    ``optimize="speed"``; without it a per-format cost model estimates them.
    Files are written in place; wrap the call in ``hwprune.outputs.output_dir`` for an
    all-or-nothing export. ``graph_dir``: a folder where the caller stores the quantized
    graph itself (the manifest records it relative to ``out_dir``); by default it is
    written to ``out_dir/graph``.
    """
    if not graph.is_quantized:
        raise ModelError(
            f"model {graph.name!r} is not quantized; the C backend needs a fixed-point graph (run quant.calibrate first)"
        )
    core = (target.cpu if target is not None and target.cpu else "cortex-m4")
    budget = None
    if target is not None and target.flash_bytes is not None:
        budget = target.flash_bytes - CODE_ALLOWANCE_BYTES
    storages = choose_formats(graph, formats, optimize, core, budget, measured)
    plan = plan_model(graph, storages)
    texts = render(plan)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    for header in COPIED_HEADERS:
        shutil.copyfile(templates_dir() / "c" / header, out_dir / header)
        written.append(out_dir / header)
    location = GRAPH_DIR if graph_dir is None else Path(os.path.relpath(graph_dir, out_dir)).as_posix()
    manifest = _manifest(plan, storages, location)
    if optimize == "balanced":
        manifest["optimize"] = {"goal": "balanced", "core": core, "instructions": cost.ESTIMATED,
                                "estimated_instructions": {s.name: round(cost.instructions(s, core)) for s in storages}}
    if optimize == "speed":
        if measured is not None:
            times = {f"{layer}:{fmt}": round(c) for (layer, fmt), c in sorted(measured.items())}
            manifest["optimize"] = {"goal": "speed", "core": core, "flash_budget_bytes": budget, "cycles": cost.MEASURED,
                                    "measured_cycles": times}
        else:
            manifest["optimize"] = {"goal": "speed", "core": core, "flash_budget_bytes": budget,
                                    "instructions": cost.ESTIMATED,
                                    "estimated_instructions": {s.name: round(cost.instructions(s, core)) for s in storages}}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    written.append(out_dir / MANIFEST)
    if graph_dir is None:
        if (out_dir / GRAPH_DIR).exists():
            shutil.rmtree(out_dir / GRAPH_DIR)
        save_graph(graph, out_dir / GRAPH_DIR)
        written.append(out_dir / GRAPH_DIR)
    return CExport(out_dir, graph.name, tuple(written), tuple(storages))


def read_manifest(export_dir) -> dict:
    path = Path(export_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{export_dir} is not a C export (no {MANIFEST}); create one with hwprune export") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if data.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{path}: not an hwprune C export manifest")
    return data


def load_export(export_dir) -> Graph:
    """The quantized graph an export was made from (its reference)."""
    manifest = read_manifest(export_dir)
    missing = [name for name in C_SOURCES if not (Path(export_dir) / name).is_file()]
    if missing:
        raise ModelError(f"{export_dir}: C sources {missing} are missing; re-run hwprune export")
    return load_graph(Path(export_dir) / manifest.get("graph", GRAPH_DIR))
