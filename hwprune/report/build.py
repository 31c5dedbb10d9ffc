"""A report: the verification of an export folder (``harness.verify.verify_export``) with the
figures around it, as JSON, Markdown and plots.

``build_report`` adds the tables, the sizes, the FPGA and energy figures and (for a Cortex-M
target) the firmware's measurements with the all-dense baseline; the renderers only format
what it returns. ``hwprune verify --json`` prints the same dict without the baseline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

import hwprune.backends.builtin  # noqa: F401 (check_code regenerates the code of every registered backend)
from hwprune import __version__
from hwprune.exportdir import C_DIR
from hwprune.fpga.fit import report_figures
from hwprune.harness.measure import measure_export
from hwprune.harness.verify import ExportVerification, verify_export
from hwprune.ir.graph import logits_note, outputs_are_logits
from hwprune.report import graph as report_graph
from hwprune.report import mcu as report_mcu
from hwprune.report.markdown import render_markdown, render_plot
from hwprune.report.tables import energy_section, fpga_figures, layer_rows

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"


def build_report(verified: ExportVerification, baseline: bool = True) -> dict:
    """The dict behind report.json: ``verified``'s verdicts with the report's figures.
    ``baseline``: measure the all-dense firmware too when the Cortex-M engine ran (what the
    chosen formats gain; one more emulated build)."""
    graph, meta, result = verified.graph, verified.meta, verified.result
    export_dir = verified.folder
    if verified.compiled:
        size = measure_export(export_dir / C_DIR)  # a failing compiler is an error, not a blank figure
        flash, ram = size.flash, size.ram
        how = f"model.c compiled on the host: {size.compiler} {' '.join(size.flags)}"
    else:
        flash = ram = None
        how = "not measured: exported with --no-compile"
    layers = layer_rows(graph, meta.get("formats", {}))
    dense_rows = [r for r in layers if r["weighted"]]  # every layer with weights
    nonzero = sum(r["nonzero_weights"] for r in dense_rows)
    total = sum(r["total_weights"] for r in dense_rows)
    weight_bytes = sum(r["weight_bytes"] for r in dense_rows)
    report = {
        "model": graph.name,
        "hwprune_version": __version__,
        "source": meta.get("source", ""),
        "bit_exact": verified.bit_exact,
        "compiled": verified.compiled,
        "vectors": result.vectors,
        "mismatches": sum(c.mismatches for c in result.comparisons),
        "engines": verified.engines(),
        "flash_bytes": flash,
        "ram_bytes": ram,
        "size_measured_with": how,
        "macs": sum(r["macs"] for r in dense_rows),
        "macs_sparse": sum(r["macs_sparse"] for r in dense_rows),
        "nonzero_weights": nonzero,
        "total_weights": total,
        "sparsity": 1 - nonzero / total if total else 0.0,
        "weight_bytes": weight_bytes,
        "bias_bytes": sum(r["bias_bytes"] for r in dense_rows),
        "dense_weight_bytes": sum(r["dense_weight_bytes"] for r in dense_rows),
        "csr_weight_bytes": sum(r["csr_weight_bytes"] for r in dense_rows),
        "bits_per_nonzero": weight_bytes * 8 / max(nonzero, 1),
        "input_type": str(graph.input_t),
        "output_type": str(graph.output_t),
        "outputs": logits_note(graph) if outputs_are_logits(graph) else "the last layer's values",
        "removed_neurons": meta.get("removed_neurons", {}),
        "dead_channels": meta.get("dead_channels"),
        "weight_bits": meta.get("weight_bits"),
        "activation_bits": meta.get("activation_bits"),
        "layers": layers,
        "fidelity": meta.get("fidelity"),
    }
    report.update(fpga_figures(export_dir, report))
    report["energy_proxy_pj"] = energy_section(graph, meta.get("formats", {}))
    mcu = verified.mcu
    if mcu is not None and mcu.last_measurement is not None:
        dense = (report_mcu.dense_baseline(graph, mcu, verified.x_int, meta.get("formats", {}))
                 if baseline else None)
        report_mcu.apply_measurement(report, mcu.last_measurement, dense)
        flash, ram = report["flash_bytes"], report["ram_bytes"]
    if verified.target:
        t = verified.target
        fit = {"name": t.name, "description": t.description}
        if t.kind == "fpga":  # the part the hls4ml project was written for, else the target file's
            fit["part"] = (meta.get("hls4ml") or {}).get("part") or t.part
        if t.flash_bytes and flash is not None:
            fit.update(flash_bytes=t.flash_bytes, flash_used=flash / t.flash_bytes,
                       ram_bytes=t.ram_bytes, ram_used=ram / t.ram_bytes,
                       fits=flash <= t.flash_bytes and ram <= t.ram_bytes)
        report["target"] = fit
        if t.kind == "fpga":
            report.update(report_figures(graph, t, meta))
    return report




def analyze(export_dir, inputs: Optional[np.ndarray] = None, target: Optional[str] = None,
            engines: Optional[list] = None, cc: Optional[str] = None, check: bool = True,
            compile: Optional[bool] = None, inputs_name: str = "inputs", trust_export: bool = False,
            baseline: bool = True) -> dict:
    """Verify an export folder (``verify_export``, whose arguments these are) and build its report."""
    return build_report(verify_export(export_dir, inputs, target, engines, cc, check=check, compile=compile,
                                      inputs_name=inputs_name, trust_export=trust_export), baseline)


#: Report keys only the producer of an export knows (the demo's accuracy per stage);
#: re-rendering a report keeps them.
PRODUCER_KEYS = ("stages", "demo")


def write_report(export_dir, extra: Optional[dict] = None, inputs=None, target: Optional[str] = None,
                 check: bool = True, into=None, engines: Optional[list] = None, cc: Optional[str] = None,
                 trust_export: bool = False) -> dict:
    """Measure ``export_dir`` and write report.json, report.md and report.png into it (or
    into the folder ``into``)."""
    export_dir = Path(export_dir)
    report = analyze(export_dir, inputs, target, engines, cc, check=check, trust_export=trust_export)
    previous = export_dir / REPORT_JSON
    if extra is None and previous.is_file():
        try:
            old = json.loads(previous.read_text())
            extra = {key: old[key] for key in PRODUCER_KEYS if key in old}
        except json.JSONDecodeError:
            pass
    report.update(extra or {})
    into = Path(into) if into is not None else export_dir
    (into / REPORT_JSON).write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    (into / REPORT_MD).write_text(render_markdown(report))
    render_plot(report, into / REPORT_PNG)
    for draw, name in ((report_mcu.render_plot, report_mcu.MCU_PLOT), (report_graph.render_plot, report_graph.GRAPH_PLOT)):
        if not draw(report, into / name) and (into / name).exists():
            (into / name).unlink()  # a figure from an earlier run would no longer match
    return report


def json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
