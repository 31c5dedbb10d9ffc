"""Figures of an export folder, as JSON, Markdown and a plot.

``analyze`` measures (it runs every available engine and the size measurement); the
renderers only format what it returns. ``hwprune verify --json`` prints the same dict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import __version__, report_graph
from hwprune.errors import HwpruneError
from hwprune.ir.graph import logits_note, outputs_are_logits
from hwprune.ir.io import load_graph

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"


def _layer_rows(graph, formats: dict) -> list[dict]:
    from hwprune.backends.c.formats import encode

    from hwprune.ir.layers import WeightedLayer

    rows = []
    for layer in graph.layers:
        shape_in, shape_out = graph.input_shapes(layer)[0], graph.shape_of(layer.name)
        if layer.kind == "softmax":
            continue  # not computed by any engine (the outputs are logits); see report["outputs"]
        row = {"name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs), "input_shape": list(shape_in),
               "output_shape": list(shape_out), "weighted": isinstance(layer, WeightedLayer),
               "types": {k: str(v) for k, v in layer.types().items()}}
        if isinstance(layer, WeightedLayer):  # Dense and conv: a conv's MACs are over every output position
            encoded = {fmt: encode(layer, fmt) for fmt in ("dense", "csr")}
            fmt = formats.get(layer.name, "dense")
            chosen = encoded[fmt] if fmt in encoded else encode(layer, fmt, shape_in)
            dense, csr = encoded["dense"], encoded["csr"]
            n, k = layer.weight.size, layer.nonzero_weights
            row.update(
                format=chosen.format,
                total_weights=n,
                nonzero_weights=k,
                sparsity=1 - k / n,
                weight_bytes=chosen.weight_bytes,
                bias_bytes=chosen.bias_bytes,
                bits_per_nonzero=chosen.bits_per_nonzero,
                entropy_bits_per_nonzero=chosen.entropy_bits / max(k, 1),
                value_bits=layer.weight_t.width,
                dense_weight_bytes=dense.weight_bytes,
                csr_weight_bytes=csr.weight_bytes,
                macs=graph.layer_macs(layer),
                macs_sparse=graph.layer_macs(layer, nonzero_only=True),
            )
        else:
            row.update(format=None, total_weights=0, nonzero_weights=0, weight_bytes=0, bias_bytes=0,
                       bits_per_nonzero=None, macs=0, macs_sparse=0)
        rows.append(row)
    return rows


def analyze(export_dir, inputs: Optional[np.ndarray] = None, target: Optional[str] = None,
            engines: Optional[list] = None, cc: Optional[str] = None, check: bool = True,
            compile: Optional[bool] = None, inputs_name: str = "inputs", trust_export: bool = False) -> dict:
    """Verify and measure an export folder; the dict behind report.json and verify --json.

    ``engines``: names of the engines to compare with the reference (default: all but
    ``mcu``, plus ``mcu`` when the export's target is a Cortex-M chosen by the user,
    ``hwprune.report_mcu.select_engines``); ``cc``: the cross compiler of the mcu engine.
    ``check``: refuse a folder without a manifest or whose files differ from it (off only
    while the export itself writes the folder). ``compile``: build and run the C (default:
    as the export did; ``hwprune verify`` always does). ``inputs_name`` names ``inputs`` in errors.
    ``trust_export``: compile the folder's C and hls4ml project as they are, without first
    comparing them with what hwprune regenerates from its graph (``harness.regenerate``)."""
    from hwprune import report_mcu
    from hwprune.errors import ToolchainError
    from hwprune.harness import measure_export, verify
    from hwprune.harness.verify import require_engines
    from hwprune.harness.regenerate import check_code
    from hwprune.manifest import check as check_manifest
    from hwprune.exportdir import C_DIR, EXPORT_FILE, read_vectors
    from hwprune.reference import quantize_input

    export_dir = Path(export_dir)
    if check:
        check_manifest(export_dir)
    graph = load_graph(export_dir)
    try:
        meta = json.loads((export_dir / EXPORT_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise HwpruneError(f"{export_dir}: {EXPORT_FILE} is missing or unreadable ({exc}); re-run hwprune export") from None
    if compile is None:
        compile = meta.get("compiled", True)
    if check and compile:  # before anything of the folder is compiled or run
        check_code(export_dir, trust_export)
    stored = None
    if inputs is None:
        vectors = read_vectors(export_dir, graph)
        x_int, stored = vectors["x_int"], vectors["y_int"]
    else:
        x_int = quantize_input(graph, np.asarray(inputs, dtype=np.float64), inputs_name)

    target_spec, chosen = report_mcu.export_target(meta, target)
    selected, mcu = report_mcu.select_engines(target_spec, chosen, engines, cc, default_cc=meta.get("cc"))
    if compile:  # an engine or a cross compiler the user asked for runs, or the command fails
        if engines:
            require_engines(selected, export_dir / C_DIR)
        if cc and mcu is not None and mcu.unavailable_reason():
            raise ToolchainError(f"--cc {cc}: the mcu engine cannot run: {mcu.unavailable_reason()}")
    engines = {"reference": {"available": True, "bit_exact": True, "mismatches": 0,
                             "note": "the numpy integer reference; the definition of the output"}}
    if compile:
        result = verify(export_dir / C_DIR, x_int, selected, stored_outputs=stored)
        if not result.engines_ran:
            raise ToolchainError("no engine could run the export: " + "; ".join(f"{n}: {why}" for n, why in result.skipped))
    else:
        result = verify(export_dir / C_DIR, x_int, engines=[], stored_outputs=stored)
    for c in result.comparisons:
        engines[c.engine] = {"available": True, "bit_exact": c.bit_exact, "mismatches": c.mismatches,
                             "note": "" if c.bit_exact else c.report()}
    for name, why in result.skipped:
        engines[name] = {"available": False, "bit_exact": None, "mismatches": None, "note": why}
    if compile:
        size = measure_export(export_dir / C_DIR)  # a failing compiler is an error, not a blank figure
        flash, ram = size.flash, size.ram
        how = f"model.c compiled on the host: {size.compiler} {' '.join(size.flags)}"
    else:
        flash = ram = None
        how = "not measured: exported with --no-compile"
    layers = _layer_rows(graph, meta.get("formats", {}))
    dense_rows = [r for r in layers if r["weighted"]]  # every layer with weights
    nonzero = sum(r["nonzero_weights"] for r in dense_rows)
    total = sum(r["total_weights"] for r in dense_rows)
    weight_bytes = sum(r["weight_bytes"] for r in dense_rows)
    report = {
        "model": graph.name,
        "hwprune_version": __version__,
        "source": meta.get("source", ""),
        "bit_exact": result.bit_exact if compile else None,
        "compiled": bool(compile),
        "vectors": result.vectors,
        "mismatches": sum(c.mismatches for c in result.comparisons),
        "engines": engines,
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
    report.update(_fpga_figures(export_dir, report))
    report["energy_proxy_pj"] = _energy(graph, meta.get("formats", {}))
    if mcu is not None and mcu.last_measurement is not None:
        report_mcu.apply_measurement(report, mcu.last_measurement,
                                     report_mcu.dense_baseline(graph, mcu, x_int, meta.get("formats", {})))
        flash, ram = report["flash_bytes"], report["ram_bytes"]
    if target_spec:
        t = target_spec
        fit = {"name": t.name, "description": t.description}
        if t.kind == "fpga":  # the part the hls4ml project was written for, else the target file's
            fit["part"] = (meta.get("hls4ml") or {}).get("part") or t.part
        if t.flash_bytes and flash is not None:
            fit.update(flash_bytes=t.flash_bytes, flash_used=flash / t.flash_bytes,
                       ram_bytes=t.ram_bytes, ram_used=ram / t.ram_bytes,
                       fits=flash <= t.flash_bytes and ram <= t.ram_bytes)
        report["target"] = fit
        if t.kind == "fpga":
            from hwprune.fpga.fit import report_figures

            report.update(report_figures(graph, t, meta))
    return report


def _fpga_figures(export_dir: Path, report: dict) -> dict:
    """Weight memory of the exported artifact: the hls4ml project's when there is one, else
    the C arrays'; and what pruning left to compute on the FPGA."""
    from hwprune.backends.hls4ml.project import SUMMARY, read_summary
    from hwprune.exportdir import HLS4ML_DIR

    project = export_dir / HLS4ML_DIR
    if not (project / SUMMARY).is_file():
        return {"weight_memory_bits": report["weight_bytes"] * 8,
                "dense_weight_memory_bits": report["dense_weight_bytes"] * 8}
    summary = read_summary(project)
    keys = ("multiplications", "multiplications_dense", "multiplier_weights", "da_adder_cost", "options", "softmax")
    return {"weight_memory_bits": summary["weight_memory_bits"],
            "dense_weight_memory_bits": summary["dense_weight_memory_bits"],
            "hls4ml": {key: summary[key] for key in keys}}


def _energy(graph, formats: dict) -> Optional[dict]:
    from hwprune import energy

    try:
        return energy.report_section(graph, formats)
    except HwpruneError as exc:  # a layer kind without an energy rule: say so, export anyway
        return {"total": None, "note": str(exc)}


def _fmt(value, digits=2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(report: dict) -> str:
    lines = [f"# hwprune report: {report['model']}", ""]
    lines.append(f"hwprune {report['hwprune_version']}" + (f", from `{report['source']}`" if report.get("source") else ""))
    lines.append("")
    if report.get("stages"):
        energy = all("energy_proxy_pj" in stage for stage in report["stages"])
        lines += ["## Accuracy at each stage", "", "| stage | accuracy | sparsity |" + (" energy proxy |" if energy else ""),
                  "|---|---:|---:|" + ("---:|" if energy else "")]
        for stage in report["stages"]:
            lines.append(f"| {stage['stage']} | {stage['accuracy'] * 100:.2f} % | {stage.get('sparsity', 0) * 100:.1f} % |"
                         + (f" {stage['energy_proxy_pj'] / 1e3:.1f} nJ |" if energy else ""))
        lines.append("")
    lines += _fidelity_markdown(report)
    verdict = ("**not verified** (exported with --no-compile; run hwprune verify)" if report.get("bit_exact") is None
               else "**bit-exact**" if report["bit_exact"] else "**MISMATCH**")
    lines += ["## Verification", "",
              f"{verdict}: {report['vectors']} test vectors, {report['mismatches']} mismatching outputs.", "",
              "| engine | available | bit-exact | mismatches | note |", "|---|---|---|---:|---|"]
    for name, e in report["engines"].items():
        lines.append(f"| {name} | {'yes' if e['available'] else 'no'} | {_fmt(e.get('bit_exact'))} | "
                     f"{_fmt(e.get('mismatches'))} | {e.get('note', '')} |")
    lines += ["", "## Size and work", "",
              f"- flash {report['flash_bytes']} B, RAM {report['ram_bytes']} B ({report['size_measured_with']})",
              f"- weights: {report['nonzero_weights']} of {report['total_weights']} nonzero "
              f"({report['sparsity'] * 100:.1f} % sparse); {report['weight_bytes']} B as exported, "
              f"{report['dense_weight_bytes']} B dense, {report['csr_weight_bytes']} B csr; "
              f"{report['bits_per_nonzero']:.2f} bits per nonzero weight, indices included",
              f"- MACs per inference: {report['macs']} dense, {report['macs_sparse']} on nonzero weights "
              f"({report['macs'] / max(report['macs_sparse'], 1):.1f}x fewer)",
              f"- types: input {report['input_type']}, output {report['output_type']}"]
    if report.get("outputs", "").startswith("outputs are logits"):
        lines.append(f"- {report['outputs']}")
    if report.get("removed_neurons"):
        removed = ", ".join(f"{n} from {name}" for name, n in report["removed_neurons"].items())
        lines.append(f"- dead neurons removed before export (their constant output folded into the next bias): {removed}")
    dead = report.get("dead_channels") or {}
    if dead.get("filters_removed"):
        lines.append(f"- dead channels removed from the quantized graph (constants folded exactly into every reader): "
                     f"{dead['filters_removed']} filters or units; MACs {dead['macs_before']} -> "
                     f"{dead['macs_after']}")
    target = report.get("target")
    if target and "flash_bytes" in target:
        lines.append(f"- target {target['name']} ({target['description']}): {target['flash_used'] * 100:.2f} % of flash, "
                     f"{target['ram_used'] * 100:.2f} % of RAM" + ("" if target["fits"] else " — DOES NOT FIT"))
    if report.get("fpga"):
        from hwprune.fpga.fit import markdown_lines

        lines += markdown_lines(report)
    if report.get("hls4ml"):
        h = report["hls4ml"]
        o = h["options"]
        memory = ("weights are constants in the logic" if report["weight_memory_bits"] is None else
                  f"weight memory {report['weight_memory_bits']} bits")
        lines.append(f"- hls4ml project ({o['strategy']}, reuse {o['reuse_factor']}, {o['part']}): "
                     f"{h['multiplications']} of {h['multiplications_dense']} multiplications remain, "
                     f"{h['multiplier_weights']} need a multiplier (the rest are shifts)"
                     + (f", da4ml adder cost {h['da_adder_cost']:.0f}" if h.get("da_adder_cost") is not None else "")
                     + f"; {memory}, {report['dense_weight_memory_bits']} bits dense")
        if h.get("softmax"):
            lines.append(f"- {h['softmax']}")
    lines += ["", "## Layers", "",
              "| layer | kind | format | nonzero / total | weight B | dense B | csr B | bits/nonzero | bound: mask + values | MACs sparse / dense |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    branched = report_graph.is_branched(report)
    for r in report["layers"]:
        kind = r["kind"] + (f" <- {', '.join(r['inputs'])}" if branched else "")  # what a layer of a graph reads
        if not r.get("weighted", r["kind"] == "dense"):
            lines.append(f"| {r['name']} | {kind} | | | | | | | | |")
            continue
        lines.append(
            f"| {r['name']} | {kind} | {r['format']} | {r['nonzero_weights']} / {r['total_weights']} | "
            f"{r['weight_bytes']} | {r['dense_weight_bytes']} | {r['csr_weight_bytes']} | "
            f"{r['bits_per_nonzero']:.2f} | {r['entropy_bits_per_nonzero'] + r['value_bits']:.2f} | "
            f"{r['macs_sparse']} / {r['macs']} |"
        )
    lines += ["", "Bits per nonzero count every byte of weight storage (values, indices, row pointers). The bound",
              "is log2 C(n, k) / k, the fewest bits per nonzero any format could spend on where the k nonzeros",
              "of n are, plus the width of one value (every format stores the values at full width).", ""]
    lines += report_graph.markdown(report)
    if (report.get("energy_proxy_pj") or {}).get("total") is not None:
        from hwprune.report_energy import markdown_lines

        lines += markdown_lines(report["energy_proxy_pj"])
    lines += report_mcu_markdown(report)
    return "\n".join(lines)


def _fidelity_markdown(report: dict) -> list[str]:
    from hwprune import fidelity

    return fidelity.markdown(report.get("fidelity"))


def report_mcu_markdown(report: dict) -> list[str]:
    from hwprune.report_mcu import markdown

    return markdown(report)


def render_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["layers"] if r.get("weighted", r["kind"] == "dense")]
    energy = report.get("energy_proxy_pj") or {}
    if energy.get("total") is not None:
        from hwprune.report_energy import plot as plot_energy

        fig, (ax, energy_ax) = plt.subplots(1, 2, figsize=(2 * max(4.5, 1.3 * len(rows) + 2), 3.4))
        plot_energy(energy_ax, energy)
    else:
        fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(rows) + 2), 3.4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["dense_weight_bytes"] for r in rows], 0.4, label="dense")
    ax.bar(x + 0.2, [r["csr_weight_bytes"] for r in rows], 0.4, label="csr")
    ax.set_xticks(x, [r["name"] for r in rows])
    ax.set_ylabel("weight bytes")
    ax.set_title(f"{report['model']}: weight storage per layer ({report['sparsity'] * 100:.0f} % sparse)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: Report keys only the producer of an export knows (the demo's accuracy per stage);
#: re-rendering a report keeps them.
PRODUCER_KEYS = ("stages", "demo")


def write_report(export_dir, extra: Optional[dict] = None, inputs=None, target: Optional[str] = None,
                 check: bool = True, into=None, engines: Optional[list] = None, cc: Optional[str] = None,
                 trust_export: bool = False) -> dict:
    """Measure ``export_dir`` and write report.json, report.md and report.png into it (or
    into the folder ``into``)."""
    from hwprune.report_mcu import MCU_PLOT, render_plot as render_mcu_plot

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
    (into / REPORT_JSON).write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    (into / REPORT_MD).write_text(render_markdown(report))
    render_plot(report, into / REPORT_PNG)
    for draw, name in ((render_mcu_plot, MCU_PLOT), (report_graph.render_plot, report_graph.GRAPH_PLOT)):
        if not draw(report, into / name) and (into / name).exists():
            (into / name).unlink()  # a figure from an earlier run would no longer match
    return report


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
