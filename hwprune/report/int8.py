"""The report of an int8 export folder (TFLite's dialect, ``pipeline_int8``): report.json
and report.md, as ``hwprune report`` writes them for ap_fixed exports (``report``).

``analyze_int8`` measures: it checks the folder's C against what hwprune regenerates, runs
the stored vectors through the reference, TFLite Micro and the host C, compiles
``model_int8.c`` for its sections, and, when the Cortex-M toolchain and emulator are there,
runs a few vectors on the target core for cycles, flash, RAM and stack. Per layer it counts
MACs, weights, nonzeros, the storage the C chose (``backends.c_int8_plan.stored_dense``) and the
bytes of that layer's constant arrays, whose sum is the export's own ``c_weight_bytes``.
The renderer only formats what it returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

import hwprune.backends.builtin  # noqa: F401 (check_code regenerates the code of every registered backend)
from hwprune import __version__
from hwprune.backends.c_int8 import SOURCE, layer_arrays, layer_kernels
from hwprune.backends.c_int8_plan import WIDE_WEIGHTS_KEY, stored_dense
from hwprune.errors import ToolchainError
from hwprune.exportdir import C_DIR, DEAD_CHANNELS_KEY, EXPORT_FILE
from hwprune.harness.build import SIZE_FLAGS, compile_object, find_cc
from hwprune.harness.measure import section_sizes
from hwprune.harness.regenerate import check_code
from hwprune.ir.graph import Graph
from hwprune.ir.io import load_graph
from hwprune.pipeline_int8 import (DEFAULT_ENGINES, c_weight_bytes, mcu_int8, mcu_reason, read_int8_vectors,
                                   verification_report, verify_int8)
from hwprune.report.build import REPORT_JSON, REPORT_MD, json_default
from hwprune.targets import export_target, get_target
from hwprune.tempdirs import temp_dir

MCU_VECTORS = 2  # the emulator runs about a million instructions a second: cycles need few vectors
DEFAULT_MCU_TARGET = "stm32l4r5"  # harness.mcu_int8's default core (Cortex-M4)
# what export.json holds that only the export knew (the float model's fidelity, the pruning asked for)
EXPORT_KEYS = ("source", "quant", "sparsity_requested", "removed_neurons", "fidelity", DEAD_CHANNELS_KEY,
               WIDE_WEIGHTS_KEY)


def layer_rows(graph: Graph, wide: bool = False) -> list[dict]:
    """``wide``: the C's quad records hold int16 weights (export.json's WIDE_WEIGHTS_KEY)"""
    rows = []
    for layer, kernel, arrays in zip(graph.layers, layer_kernels(graph), layer_arrays(graph, wide)):
        row = {"name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs),
               "output_shape": list(graph.shape_of(layer.name)), "weighted": bool(layer.weighted),
               "macs": graph.layer_macs(layer), "macs_sparse": graph.layer_macs(layer, nonzero_only=True),
               "kernel": kernel}
        if layer.weighted:
            total, nonzero = int(layer.weight.size), int(layer.nonzero_weights)
            row.update(format="dense" if stored_dense(layer) else "sparse", total_weights=total,
                       nonzero_weights=nonzero, sparsity=1 - nonzero / total if total else 0.0,
                       c_bytes=c_weight_bytes("".join(arrays)))
        rows.append(row)
    return rows


def _host_size(folder: Path) -> Optional[dict]:
    """Sections of ``model_int8.c`` compiled alone on the host (None without a C compiler)."""

    try:
        compiler = find_cc()
    except ToolchainError:
        return None
    with temp_dir("size") as tmp:
        obj = compile_object(folder / C_DIR / SOURCE, Path(tmp) / "model.o", [folder / C_DIR], (), SIZE_FLAGS, compiler)
        sizes = section_sizes(obj)
    return {**sizes, "flash": sizes["text"] + sizes["rodata"] + sizes["data"], "ram": sizes["data"] + sizes["bss"],
            "measured_with": f"{SOURCE} compiled on the host: {compiler} {' '.join(SIZE_FLAGS)}"}


def _mcu(folder: Path, graph: Graph, x_int: np.ndarray, target, cc):
    """(comparison, figures) of the first vectors on ``target``'s core, or (None, why not)."""

    why = mcu_reason(cc)
    if why:
        return None, why
    return mcu_int8(folder, graph, x_int[:MCU_VECTORS], target, cc)


def analyze_int8(folder, target: Optional[str] = None, trust_export: bool = False) -> dict:
    """The figures of the int8 export ``folder`` (whose manifest was checked)."""

    folder = Path(folder)
    chip = get_target(target) if target else None  # an unknown chip is refused before anything runs
    check_code(folder, trust_export)  # before anything compiles the folder's C
    meta = json.loads((folder / EXPORT_FILE).read_text())
    graph = load_graph(folder)
    x_int, stored = read_int8_vectors(folder, graph)
    comparisons, skipped, _ = verify_int8(folder, graph, x_int, stored, DEFAULT_ENGINES)
    # the chip: --target, else the export's Cortex-M target, else the default Cortex-M4
    exported, _ = export_target(meta)
    mcu_target = (chip if chip is not None and chip.kind == "mcu" else exported if exported.kind == "mcu"
                  else get_target(DEFAULT_MCU_TARGET))
    mcu_comparison, mcu = _mcu(folder, graph, x_int, mcu_target, meta.get("cc"))
    if mcu_comparison is None:
        skipped, mcu = [*skipped, ("mcu", mcu)], None
    else:
        comparisons = [*comparisons, mcu_comparison]
    report = {**verification_report(graph, x_int, comparisons, skipped), "hwprune_version": __version__}
    report.update({key: meta[key] for key in EXPORT_KEYS if key in meta})
    rows = layer_rows(graph, meta.get(WIDE_WEIGHTS_KEY) is True)
    source = (folder / C_DIR / SOURCE).read_text()
    report.update(layers=rows, c_weight_bytes=c_weight_bytes(source),
                  input_type=str(graph.input_t), output_type=str(graph.output_t),
                  host_size=_host_size(folder), mcu=mcu)
    size = mcu or {}
    flash = size.get("flash_bytes", (report["host_size"] or {}).get("flash"))
    ram = (size["static_ram_bytes"] + size["stack_bytes"]) if mcu else (report["host_size"] or {}).get("ram")
    report.update(flash_bytes=flash, ram_bytes=ram)
    if chip is not None and chip.kind == "mcu" and flash is not None:
        report["target"] = {"name": chip.name, "description": chip.description, "flash_bytes": chip.flash_bytes,
                            "ram_bytes": chip.ram_bytes, "flash_used": flash / chip.flash_bytes,
                            "ram_used": ram / chip.ram_bytes,
                            "fits": flash <= chip.flash_bytes and ram <= chip.ram_bytes}
    return report


def _yes_no(value) -> str:
    return "-" if value is None else "yes" if value else "no"


def render_markdown(report: dict) -> str:
    lines = [f"# hwprune report: {report['model']} (TFLite int8)", "",
             f"hwprune {report['hwprune_version']}" + (f", from `{report['source']}`" if report.get("source") else ""),
             ""]
    fidelity = report.get("fidelity")
    if fidelity:
        lines += ["## Fidelity (float model against the int8 reference)", ""]
        if fidelity.get("top1_agreement") is not None:
            lines.append(f"- top-1 agreement: {fidelity['top1_agreement'] * 100:.1f} %")
        lines += [f"- largest output error: {fidelity['max_abs_error_of_range'] * 100:.2f} % of the float outputs' "
                  "range", ""]
    verdict = {True: "**bit-exact**", False: "**MISMATCH**", None: "**not verified** (no engine could run)"}
    lines += ["## Verification", "", f"{verdict[report['bit_exact']]}: {report['vectors']} test vectors, "
              f"{report['mismatches']} mismatching elements.", "",
              "| engine | bit-exact | mismatches | first differing layer |", "|---|---|---:|---|"]
    for name, e in report["engines"].items():
        lines.append(f"| {name} | {_yes_no(e['bit_exact'])} | {e['mismatches']} | {e.get('first_layer') or ''} |")
    for name, why in report["skipped"].items():
        lines.append(f"| {name} | not run | - | {why} |")
    sparse = report["macs"] / max(report["nonzero_macs"], 1)
    lines += ["", "## Size and work", ""]
    host = report.get("host_size")
    if host:
        lines.append(f"- {SOURCE} alone: flash {host['flash']} B, RAM {host['ram']} B ({host['measured_with']})")
    mcu = report.get("mcu")
    if mcu:
        lines.append(f"- firmware on {mcu['target']}: flash {mcu['flash_bytes']} B, RAM {mcu['static_ram_bytes']} B "
                     f"static + {mcu['stack_bytes']} B stack; {mcu['cycles']:.0f} cycles and "
                     f"{mcu['instructions']:.0f} instructions per inference (mean of {mcu['vectors']} vectors in the "
                     "emulator, cycles from the core's table)")
    lines += [f"- weights: {report['nonzero_weights']} of {report['total_weights']} nonzero; constant arrays of the C "
              f"(weights, indexes, biases, multipliers, shifts): {report['c_weight_bytes']} B",
              f"- MACs per inference: {report['macs']} dense, {report['nonzero_macs']} on nonzero weights "
              f"({sparse:.1f}x fewer); {report['dead_channel_macs']} on output channels whose weights are all zero",
              f"- types: input {report['input_type']}, output {report['output_type']}"]
    if report.get("removed_neurons"):
        removed = ", ".join(f"{n} from {name}" for name, n in report["removed_neurons"].items())
        lines.append(f"- dead neurons removed from the float model before quantization: {removed}")
    dead = report.get(DEAD_CHANNELS_KEY) or {}
    if dead.get("filters_removed"):
        lines.append(f"- dead channels removed from the int8 graph (their constants folded exactly into every "
                     f"reader): {dead['filters_removed']} filters or units; MACs {dead['macs_before']} -> "
                     f"{dead['macs_after']}")
    target = report.get("target")
    if target:
        fits = "" if target["fits"] else " — DOES NOT FIT"
        lines.append(f"- target {target['name']} ({target['description']}): {target['flash_used'] * 100:.2f} % of "
                     f"flash, {target['ram_used'] * 100:.2f} % of RAM{fits}")
    lines += ["", "## Layers", "", "| layer | kind | storage | nonzero / total | C bytes | MACs sparse / dense | C kernel |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in report["layers"]:
        kernel = r.get("kernel", "")  # reports written before the field hold none
        if r["weighted"]:
            lines.append(f"| {r['name']} | {r['kind']} | {r['format']} | {r['nonzero_weights']} / {r['total_weights']} "
                         f"| {r['c_bytes']} | {r['macs_sparse']} / {r['macs']} | {kernel} |")
        else:
            lines.append(f"| {r['name']} | {r['kind']} | | | | {r['macs_sparse']} / {r['macs']} | {kernel} |")
    lines += ["", "C bytes: the layer's constant arrays in model_int8.c (dense: every weight, one byte each; sparse: "
              "each output channel's nonzero weights, their indexes and where each channel starts), with its int32 "
              "biases, multipliers and shifts. C kernel: the function that runs the layer; (hwp_pwdw3_s8): a 1x1 "
              "convolution that runs inside the depthwise layer after it, straight into its ring of rows, keeping no "
              "output tensor.", ""]
    return "\n".join(lines)


def write_int8_report(folder, into, target: Optional[str] = None, trust_export: bool = False) -> dict:
    """Measure the int8 export ``folder`` and write report.json and report.md into ``into``."""
    report = analyze_int8(folder, target, trust_export)
    into = Path(into)
    (into / REPORT_JSON).write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    (into / REPORT_MD).write_text(render_markdown(report))
    return report
