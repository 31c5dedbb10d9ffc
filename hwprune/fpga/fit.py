"""A design against an FPGA part (does it fit?), and resources against sparsity (sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.errors import HwpruneError, TargetError
from hwprune.fpga.estimate import FAMILIES, Estimate, Options, estimate
from hwprune.hls4ml_options import layers_from_json, pick_strategy
from hwprune.ir.graph import Graph
from hwprune.targets import Target, available_targets, get_target

RESOURCES = (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"), ("bram_36k", "BRAM36"))
SWEEP_SPARSITIES = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95)


def fpga_target(name: str) -> Target:
    """An FPGA part from targets/; an unknown name or a chip that is not an FPGA is an error."""
    target = get_target(name)
    if target.kind != "fpga":
        raise TargetError(f"target {name!r} is a {target.kind} target, not an FPGA part; "
                          "FPGA parts: " + ", ".join(n for n, t in _fpga_targets().items()))
    return target


def _fpga_targets() -> dict[str, Target]:
    return {n: t for n, t in available_targets().items() if t.kind == "fpga"}


def family_of(target: Target) -> str:
    if target.family:
        if target.family not in FAMILIES:
            raise TargetError(f"target {target.name!r}: family {target.family!r} is not one of {list(FAMILIES)}")
        return target.family
    return "7series" if target.name.startswith("xc7") else "ultrascale+"


def options_for(target: Optional[Target], strategy: str, reuse_factor: int, layers: tuple = ()) -> Options:
    """``layers``: per-layer (name, strategy, reuse factor) of an export's configuration."""
    if target is None:
        return Options(strategy=strategy, reuse_factor=reuse_factor, layers=layers)
    return Options(strategy=strategy, reuse_factor=reuse_factor, family=family_of(target),
                   clock_mhz=float(target.clock_mhz), layers=layers)


def export_layers(meta: dict) -> tuple:
    """The per-layer strategies and reuse factors an hls4ml export was written with."""
    hls = meta.get("hls4ml") if isinstance(meta.get("hls4ml"), dict) else {}
    return layers_from_json(hls.get("layers", {}))


def fit(est: Estimate, target: Target) -> dict:
    used = {"lut": est.lut, "ff": est.ff, "dsp": est.dsp, "bram_36k": est.bram_36k}
    rows = {}
    for key, _ in RESOURCES:
        available = getattr(target, key)
        rows[key] = {"used": used[key], "available": available, "fraction": used[key] / available if available else None}
    over = [key for key in rows if rows[key]["used"] > rows[key]["available"]]
    return {"name": target.name, "part_number": target.part, "description": target.description,
            "source": target.resource_source,
            "resources": rows, "fits": not over, "over": over}


def warnings(result: dict) -> list[str]:
    labels = dict(RESOURCES)
    return [f"the design does not fit {result['name']}: {labels[k]} {r['used']:,} of {r['available']:,} "
            f"({r['fraction'] * 100:.0f} %)" for k, r in result["resources"].items() if k in result["over"]]


def prune_quantized(graph: Graph, sparsity: float) -> Graph:
    """Zero the smallest-magnitude weights of every weighted layer (types unchanged: fewer
    terms never widen a sum, so the accumulators stay exact)."""
    layers = []
    for layer in graph.layers:
        w = getattr(layer, "weight", None)
        if w is None or not sparsity:
            layers.append(layer)
            continue
        flat = np.abs(w).ravel()
        drop = int(round(sparsity * flat.size))
        pruned = np.array(w, copy=True, order="C")  # reshape(-1) below must be a view
        if drop:
            order = np.argsort(flat, kind="stable")[:drop]
            pruned.reshape(-1)[order] = 0.0
        layers.append(layer.with_(weight=pruned))
    return graph.with_layers(layers)


def sweep_sparsity(graph: Graph, options: Options, levels=SWEEP_SPARSITIES, progress=None) -> list[dict]:
    rows = []
    for s in levels:
        pruned = prune_quantized(graph, s)
        est = estimate(pruned, options)
        nonzero = sum(int(np.count_nonzero(l.weight)) for l in pruned.layers if getattr(l, "weight", None) is not None)
        rows.append({"sparsity": s, "nonzero_weights": nonzero, "dsp": est.dsp, "lut": est.lut, "ff": est.ff,
                     "bram_36k": est.bram_36k, "latency_cycles": est.latency_cycles})
        if progress is not None:
            progress(s)
    return rows


def plot_sweep(rows: list[dict], path: Path, title: str, target: Optional[Target] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["sparsity"] * 100 for r in rows]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.plot(x, [r["lut"] for r in rows], "o-", label="LUT")
    ax.set_xlabel("weights pruned (%)")
    ax.set_ylabel("LUTs")
    ax2 = ax.twinx()
    ax2.plot(x, [r["dsp"] for r in rows], "s--", color="tab:red", label="DSP")
    ax2.set_ylabel("DSPs")
    if target is not None:
        ax.axhline(target.lut, color="tab:blue", lw=0.8, ls=":")
        ax.text(x[0], target.lut, f" {target.name} LUTs", va="bottom", fontsize=7, color="tab:blue")
        if target.dsp <= 1.5 * max(r["dsp"] for r in rows):
            ax2.axhline(target.dsp, color="tab:red", lw=0.8, ls=":")
            ax2.text(x[-1], target.dsp, f"{target.name} DSPs ", ha="right", va="bottom", fontsize=7, color="tab:red")
    lines = ax.get_lines()[:1] + ax2.get_lines()[:1]
    ax.legend(lines, [l.get_label() for l in lines], loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def export_strategy(meta: dict, target: Optional[Target] = None) -> tuple[str, int]:
    """The hls4ml strategy and reuse factor an export was written with (export.json's
    ``hls4ml`` block); else the FPGA target file's defaults; else Latency, 1."""
    hls = meta.get("hls4ml") if isinstance(meta.get("hls4ml"), dict) else {}
    if not (meta.get("strategy") or hls.get("strategy")) and target is not None:
        return pick_strategy(None, None, target.strategy, target.reuse_factor)
    strategy = str(meta.get("strategy") or hls.get("strategy") or "latency").lower()
    strategy = {"distributed_arithmetic": "da"}.get(strategy, strategy)
    return strategy, int(meta.get("reuse_factor") or hls.get("reuse_factor") or 1)


def report_figures(graph: Graph, target: Target, meta: dict) -> dict:
    """The FPGA figures of ``verify --json`` and report.json for an export aimed at an FPGA:
    the estimate with the export's strategy and reuse factor (else the target's defaults)."""
    strategy, reuse = export_strategy(meta, target)
    try:
        est = estimate(graph, options_for(target, strategy, reuse, export_layers(meta)))
    except HwpruneError as exc:  # the figures are extra: verification must not fail on them
        return {key: None for key in ("dsp", "lut", "ff", "bram", "latency_cycles", "ii")} | {
            "fpga": {"strategy": strategy, "reuse_factor": reuse, "error": str(exc)}}
    result = fit(est, target)
    return {"dsp": est.dsp, "lut": est.lut, "ff": est.ff, "bram": est.bram_36k, "latency_cycles": est.latency_cycles,
            "ii": est.ii, "fpga": {"strategy": strategy, "reuse_factor": reuse, "bram_18k": est.bram_18k,
                                   "part": result, "warnings": warnings(result),
                                   "layers": [l.to_dict() for l in est.layers]}}


def markdown_lines(report: dict) -> list[str]:
    """The report.md lines of an FPGA export: the estimate, the part's use, the warnings."""
    f = report["fpga"]
    if "error" in f:
        return [f"- FPGA estimate not available: {f['error']}"]
    part = f["part"]
    use = ", ".join(f"{dict(RESOURCES)[k]} {v['used']:,} of {v['available']:,} ({v['fraction'] * 100:.1f} %)"
                    for k, v in part["resources"].items())
    lines = [f"- FPGA estimate ({f['strategy']}, reuse {f['reuse_factor']}; rules in docs/fpga_resources.md): "
             f"{report['dsp']:,} DSP, {report['lut']:,} LUT, {report['ff']:,} FF, {report['bram']} BRAM36, "
             f"latency {report['latency_cycles']} cycles, II {report['ii']}",
             f"- part {part['name']}" + (f" ({part['part_number']})" if part.get("part_number") else "")
             + f": {use}" + ("" if part["fits"] else " — DOES NOT FIT")]
    lines += [f"- **warning**: {w}" for w in f["warnings"]]
    return lines
