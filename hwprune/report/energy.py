"""The energy part of a report: the proxy's table in report.md and its bars in report.png
(the figures themselves come from ``energy.report_section``)."""

from __future__ import annotations

import numpy as np

PARTS = (("compute", "compute"), ("weight_reads", "weight reads"), ("activation_traffic", "activation traffic"))


def markdown_lines(section: dict) -> list[str]:
    base = section["float32_dense"]
    lines = [
        "## Energy proxy per inference (45 nm)", "",
        f"This is {section['note']}. Weights are read from {section['weight_memory']} "
        f"({section['weight_bytes']} B), activations from {section['activation_memory']}; "
        f"the float32 dense model of the same layer shapes reads {base['weight_bytes']} B of weights from "
        f"{base['weight_memory']}.", "",
        "| layer | compute pJ | weight reads pJ | activation traffic pJ | total pJ | float32 dense pJ | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_name = {l["name"]: l for l in base["layers"]}
    for r in [*section["layers"], {**section, "name": "**total**"}]:
        b = base if r["name"] == "**total**" else by_name.get(r["name"])
        beside = f"{b['total']:.1f} | " + (f"{b['total'] / r['total']:.1f}x" if r["total"] > 0 else "-") if b else "- | -"
        lines.append(f"| {r['name']} | {r['compute']:.1f} | {r['weight_reads']:.1f} | {r['activation_traffic']:.1f} | "
                     f"{r['total']:.1f} | {beside} |")
    lines += ["", f"The export costs {section['saving_vs_float32_dense']:.1f}x less than the float32 dense model "
                  "by this proxy. Multiplications are priced at weight x input width, additions at the "
                  "accumulator width (costs/energy_45nm.toml says how the figures scale between widths).", ""]
    return lines


def plot(ax, section: dict) -> None:
    """Stacked bars per layer: the float32 dense model (left) beside the export (right)."""
    base = {l["name"]: l for l in section["float32_dense"]["layers"]}
    layers = [l for l in section["layers"] if l["total"] > 0]
    x = np.arange(len(layers))
    colors = ("#4c72b0", "#dd8452", "#55a868")
    for offset, source, hatch in ((-0.2, "float32 dense", "//"), (0.2, "exported", None)):
        bottom = np.zeros(len(layers))
        for (key, label), color in zip(PARTS, colors):
            values = np.array([(base[l["name"]] if source == "float32 dense" else l)[key] for l in layers]) / 1e3
            ax.bar(x + offset, values, 0.38, bottom=bottom, color=color, hatch=hatch, edgecolor="white",
                   label=label if source == "exported" else None)
            bottom += values
        for xi, total in zip(x, bottom):
            ax.text(xi + offset, total, f"{total:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [l["name"] for l in layers], fontsize=8)
    ax.set_ylabel("nJ per inference (45 nm proxy)")
    ax.set_title(f"energy proxy: float32 dense (hatched) vs exported, {section['saving_vs_float32_dense']:.0f}x less",
                 fontsize=9)
    ax.legend(fontsize=7)
