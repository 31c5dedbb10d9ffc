"""The report's tables, computed from the graph and the export's options without running
anything: per-layer storage and work, the FPGA-side weight memory, the energy proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hwprune import energy
from hwprune.backends.c.formats import encode
from hwprune.backends.hls4ml.project import SUMMARY, read_summary
from hwprune.errors import HwpruneError
from hwprune.exportdir import HLS4ML_DIR
from hwprune.ir.layers import WeightedLayer


def layer_rows(graph, formats: dict) -> list[dict]:
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


def fpga_figures(export_dir: Path, report: dict) -> dict:
    """Weight memory of the exported artifact: the hls4ml project's when there is one, else
    the C arrays'; and what pruning left to compute on the FPGA."""
    project = export_dir / HLS4ML_DIR
    if not (project / SUMMARY).is_file():
        return {"weight_memory_bits": report["weight_bytes"] * 8,
                "dense_weight_memory_bits": report["dense_weight_bytes"] * 8}
    summary = read_summary(project)
    keys = ("multiplications", "multiplications_dense", "multiplier_weights", "da_adder_cost", "options", "softmax")
    return {"weight_memory_bits": summary["weight_memory_bits"],
            "dense_weight_memory_bits": summary["dense_weight_memory_bits"],
            "hls4ml": {key: summary[key] for key in keys}}


def energy_section(graph, formats: dict) -> Optional[dict]:
    try:
        return energy.report_section(graph, formats)
    except HwpruneError as exc:  # a layer kind without an energy rule: say so, export anyway
        return {"total": None, "note": str(exc)}
