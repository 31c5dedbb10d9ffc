"""A drawing of a model with branches for the report (``report_graph.png``): one box per
layer (name, kind, output shape), an arrow from every tensor a layer reads, rows by depth
(the longest path from an input). Drawn with matplotlib alone: no graphviz binary. A chain
gets no drawing: the layer table already reads top to bottom."""

from __future__ import annotations

from pathlib import Path

GRAPH_PLOT = "report_graph.png"

#: box colours: weighted layers, layers that join tensors, everything else, graph inputs
_COLOURS = {"weighted": "#c6dbef", "merge": "#fdd0a2", "other": "#e5e5e5", "input": "#ffffff"}


def is_branched(report: dict) -> bool:
    """Whether the report's layers form anything but a chain (one layer after the other)."""
    rows = report["layers"]
    previous = None
    for row in rows:
        inputs = row.get("inputs") or []
        if len(inputs) != 1 or (previous is not None and inputs[0] != previous):
            return True
        previous = row["name"]
    return False


def layout(rows: list[dict]) -> tuple[dict[str, tuple[float, int]], list[str]]:
    """(name -> (x, depth), the graph inputs' names): each layer one row below the deepest
    tensor it reads, the boxes of a row side by side in the order of the layers."""
    names = {row["name"] for row in rows}
    inputs = list(dict.fromkeys(s for row in rows for s in row["inputs"] if s not in names))
    depth = {name: 0 for name in inputs}
    for row in rows:
        depth[row["name"]] = 1 + max(depth[s] for s in row["inputs"])
    by_level: dict[int, list[str]] = {}
    for name in [*inputs, *(row["name"] for row in rows)]:
        by_level.setdefault(depth[name], []).append(name)
    widest = max(len(level) for level in by_level.values())
    where = {}
    for level, members in by_level.items():
        offset = (widest - len(members)) / 2.0  # centre each row
        for i, name in enumerate(members):
            where[name] = (offset + i, level)
    return where, inputs


def render_plot(report: dict, path: Path) -> bool:
    """Draw the graph into ``path``; False (nothing written) for a chain."""
    if not report.get("layers") or not is_branched(report):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["layers"]
    where, inputs = layout(rows)
    widest = max(x for x, _ in where.values()) + 1
    levels = max(level for _, level in where.values()) + 1
    fig, ax = plt.subplots(figsize=(max(4.5, 2.1 * widest + 1.5), max(3.0, 0.85 * levels + 0.6)))
    skips = 0
    for row in rows:
        x, y = where[row["name"]]
        for source in row["inputs"]:
            sx, sy = where[source]
            bend = 0.0
            if abs(sy - y) > 1:  # a skip connection: bowed out, alternately left and right, clear of the boxes
                skips += 1
                bend = (0.45 + 0.1 * min(abs(sy - y), 4)) * (1 if skips % 2 else -1)
            ax.annotate("", xy=(x, -y), xytext=(sx, -sy),
                        arrowprops=dict(arrowstyle="-|>", color="#555555", lw=0.9, shrinkA=13, shrinkB=13,
                                        connectionstyle=f"arc3,rad={bend}"))
    for name in inputs:
        x, y = where[name]
        ax.text(x, -y, f"{name}\ninput", ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.35", fc=_COLOURS["input"], ec="#333333"))
    for row in rows:
        x, y = where[row["name"]]
        colour = _COLOURS["weighted" if row.get("weighted") else "merge" if len(row["inputs"]) > 1 else "other"]
        shape = "x".join(str(d) for d in row.get("output_shape", []))
        ax.text(x, -y, f"{row['name']}\n{row['kind']} {shape}", ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.35", fc=colour, ec="#333333"))
    ax.set_xlim(-1.2, widest + 0.2)
    ax.set_ylim(-(levels - 1) - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(f"{report['model']}: {len(rows)} layers", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown(report: dict) -> list[str]:
    """The report's lines pointing at the drawing (none for a chain)."""
    if not report.get("layers") or not is_branched(report):
        return []
    return ["## Graph", "", f"![layers and the tensors they read]({GRAPH_PLOT})", ""]
