"""report.md and report.png from a report dict (nothing is measured here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwprune import fidelity
from hwprune.fpga.fit import markdown_lines as fpga_markdown_lines
from hwprune.report import graph as report_graph
from hwprune.report.energy import markdown_lines as energy_markdown_lines
from hwprune.report.energy import plot as plot_energy
from hwprune.report.mcu import markdown as mcu_markdown


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
    lines += fidelity.markdown(report.get("fidelity"))
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
        lines += fpga_markdown_lines(report)
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
        lines += energy_markdown_lines(report["energy_proxy_pj"])
    lines += mcu_markdown(report)
    return "\n".join(lines)


def render_plot(report: dict, path: Path) -> None:
    # matplotlib is imported when a plot is drawn: it takes longer to import than the rest of hwprune
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["layers"] if r.get("weighted", r["kind"] == "dense")]
    energy = report.get("energy_proxy_pj") or {}
    if energy.get("total") is not None:
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
