"""The Cortex-M part of a report: the firmware's figures (``harness.select`` chooses the engines).

When the ``mcu`` engine ran, its measurements replace the host compiler's size estimate:
``flash_bytes`` and ``ram_bytes`` come from the cross-built ELF (RAM with the measured
stack), and the report gains ``instructions``, ``cycles``, ``latency_us``, ``energy_uj``,
``stack_bytes``, ``arena_bytes`` (per inference, mean over the vectors) and per-layer
``instructions`` and ``cycles``.
"""

from __future__ import annotations

from pathlib import Path

from hwprune.backends.c import export_c
from hwprune.errors import TargetError, ToolchainError
from hwprune.harness.mcu import measure_mcu
from hwprune.tempdirs import temp_dir

MCU_PLOT = "report_mcu.png"


BASELINE_VECTORS = 3


def dense_baseline(graph, engine, x_int, formats: dict):
    """The same model with every layer stored dense, measured on the same target (first
    few vectors): what the chosen formats gain. None when every layer is dense already or
    the baseline cannot be built."""
    if not formats or all(f == "dense" for f in formats.values()):
        return None
    with temp_dir("dense") as tmp:
        try:
            export_c(graph, tmp, "dense")
            target = engine.target if engine.target is not None else engine.last_measurement.target
            return measure_mcu(tmp, target, x_int[:BASELINE_VECTORS], cc=engine.cc, opt=engine.opt)
        except (ToolchainError, TargetError):
            return None


def apply_measurement(report: dict, measurement, baseline=None) -> None:
    """Put the firmware's figures into ``report`` (in place); ``baseline``: the all-dense
    build's measurement, when there is one."""
    m = measurement
    report["host_flash_bytes"], report["host_ram_bytes"] = report.get("flash_bytes"), report.get("ram_bytes")
    report["flash_bytes"] = m.flash_bytes
    report["ram_bytes"] = m.ram_bytes
    report["size_measured_with"] = (
        f"{m.core} firmware built with {m.compiler} {' '.join(f for f in m.flags if f.startswith('-O'))}: "
        f"flash = text + rodata + data of the ELF, RAM = data + bss + measured stack"
    )
    report.update(instructions=m.instructions, cycles=m.cycles, latency_us=m.latency_us, energy_uj=m.energy_uj,
                  stack_bytes=m.stack_bytes, arena_bytes=m.arena_bytes)
    report["mcu"] = m.summary()
    by_name = {layer.name: layer for layer in m.layers}
    dense_by_name = {layer.name: layer for layer in baseline.layers} if baseline else {}
    if baseline:
        report["mcu"]["dense_baseline"] = {"vectors": baseline.vectors, "instructions": baseline.instructions,
                                           "cycles": baseline.cycles, "flash_bytes": baseline.flash_bytes}
    for row in report.get("layers", []):
        cost = by_name.get(row["name"])
        if cost is not None:
            row["instructions"] = cost.instructions
            row["cycles"] = cost.cycles
        if row["name"] in dense_by_name:
            row["dense_cycles"] = dense_by_name[row["name"]].cycles


def markdown(report: dict) -> list[str]:
    """The report.md section of the firmware figures (empty when the mcu engine did not run)."""
    m = report.get("mcu")
    if not m:
        return []
    lines = ["## Cortex-M firmware", "",
             f"Target {m['target']} ({m['core']} at {m['clock_mhz']:g} MHz, {m['energy_nj_per_cycle']:g} nJ/cycle), "
             f"built with `{m['compiler']}`; {m['vectors']} vectors emulated in unicorn, each bit-exact.", "",
             "| figure | value |", "|---|---:|",
             f"| flash (text + rodata + data) | {m['flash_bytes']} B |",
             f"| RAM (data + bss + stack) | {m['ram_bytes']} B |",
             f"| of which activation arena | {m['arena_bytes']} B |",
             f"| of which stack (measured high-water mark) | {m['stack_bytes']} B |",
             f"| instructions per inference | {m['instructions']:.0f} (min {m['instructions_min']}, max {m['instructions_max']}) |",
             f"| cycles per inference | {m['cycles']:.0f} |",
             f"| latency at {m['clock_mhz']:g} MHz | {m['latency_us']:.1f} us |",
             f"| energy per inference | {m['energy_uj']:.3f} uJ |", "",
             "| layer | instructions | cycles | share of cycles | cycles if stored dense |", "|---|---:|---:|---:|---:|"]
    total = max(m["cycles"], 1.0)
    dense_cycles = {r["name"]: r.get("dense_cycles") for r in report["layers"]}
    for layer in m["layers"]:
        dense = dense_cycles.get(layer["name"])
        lines.append(f"| {layer['name']} | {layer['instructions']:.0f} | {layer['cycles']:.0f} | "
                     f"{layer['cycles'] / total * 100:.1f} % | {'-' if dense is None else f'{dense:.0f}'} |")
    lines.append(f"| (predict glue, call) | {m['other_instructions']:.0f} | {m['other_cycles']:.0f} | "
                 f"{m['other_cycles'] / total * 100:.1f} % | |")
    base = m.get("dense_baseline")
    if base:
        lines += ["", f"Every layer stored dense instead (same target, first {base['vectors']} vectors): "
                      f"{base['cycles']:.0f} cycles and {base['flash_bytes']} B of flash; the chosen formats take "
                      f"{m['cycles'] / max(base['cycles'], 1) :.2f}x the cycles and "
                      f"{m['flash_bytes'] / max(base['flash_bytes'], 1):.2f}x the flash."]
    lines += ["", f"Cycles from the per-instruction table: {m['cycle_table']} (see docs/mcu.md for its limits).",
              f"![bytes and cycles per layer]({MCU_PLOT})", ""]
    return lines


def render_plot(report: dict, path: Path) -> bool:
    """Weight bytes (dense vs chosen format) and cycles per layer; False when there is nothing to draw."""
    m = report.get("mcu")
    if not m:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in report["layers"] if r.get("cycles") is not None and r["cycles"] > 0 or r["kind"] == "dense"]
    x = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(7.0, 1.6 * len(rows) + 3), 3.4))
    left.bar(x - 0.2, [r.get("dense_weight_bytes", 0) for r in rows], 0.4, label="dense")
    left.bar(x + 0.2, [r.get("weight_bytes", 0) for r in rows], 0.4, label="as exported")
    left.set_xticks(x, [r["name"] for r in rows], rotation=30)
    left.set_ylabel("weight bytes")
    left.legend()
    if any(r.get("dense_cycles") is not None for r in rows):
        right.bar(x - 0.2, [r.get("dense_cycles") or 0 for r in rows], 0.4, label="dense")
        right.bar(x + 0.2, [r.get("cycles", 0) or 0 for r in rows], 0.4, label="as exported")
        right.legend()
    else:
        right.bar(x, [r.get("cycles", 0) or 0 for r in rows], 0.6, color="tab:green")
    right.set_xticks(x, [r["name"] for r in rows], rotation=30)
    right.set_ylabel(f"cycles per inference ({m['core']})")
    fig.suptitle(f"{report['model']} on {m['target']}: {m['cycles']:.0f} cycles, {m['flash_bytes']} B flash")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
