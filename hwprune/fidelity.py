"""Fidelity: does the integer model still compute the float model?

Bit-exact says that the C equals the integer reference; it says nothing about how far
quantization moved the reference from the float model it came from. On the test vectors
this module measures the float model against the integer reference, in the terms of the
model's task (``TASKS``): a classifier (a model that ends in Softmax or LogSoftmax, or
``--task classification``) gets top-1 agreement, and a warning below
``AGREEMENT_WARNING``; a regression model (no final Softmax, or ``--task regression``) gets
its max and mean error relative to the range of the float outputs and the
signal-to-quantization-noise ratio (SQNR, dB), and a warning when the max error exceeds
``RELATIVE_ERROR_WARNING`` of that range. Both get the max and mean absolute error and the
fraction of nonzero float weights that quantization rounded to zero.

It also refuses absurd fixed-point ranges (``MAX_INT_BITS``): calibration data of 1e30
would otherwise give an input type with a hundred integer bits without a word.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hwprune.errors import FixedPointError, OptionError
from hwprune.ir.graph import Graph, outputs_are_logits
from hwprune.quant.calibrate import float_forward
from hwprune.ir.fixed import to_real

TASKS = ("classification", "regression")
AGREEMENT_WARNING = 0.90
RELATIVE_ERROR_WARNING = 0.10
MAX_INT_BITS = 32


def check_ranges(graph: Graph, calibration: np.ndarray, what: str = "calibration inputs") -> None:
    """FixedPointError naming the input (or the layer) whose calibrated type needs more
    than ``MAX_INT_BITS`` integer bits."""
    t = graph.input_t
    if t is not None and t.int_bits > MAX_INT_BITS:
        flat = np.abs(np.asarray(calibration, dtype=np.float64)).reshape(len(calibration), -1)
        vector, element = np.unravel_index(int(np.argmax(flat)), flat.shape)
        raise FixedPointError(
            f"{what}: value {flat[vector, element]:.3g} (vector {vector}, element {element}) needs {t.int_bits} "
            f"integer bits ({t}); hwprune allows at most {MAX_INT_BITS}: scale the inputs to a sane range")
    for layer in graph.layers:
        for field, lt in layer.types().items():
            if lt is not None and lt.int_bits > MAX_INT_BITS and field != "accum_t":
                raise FixedPointError(
                    f"layer {layer.name!r}: its {field[:-2]} type {lt} needs more than {MAX_INT_BITS} integer bits "
                    f"on the {what}; scale the inputs or the weights")


def zeroed_by_quantization(float_graph: Graph, quantized: Graph) -> dict:
    """Nonzero float weights, and how many of them quantized to zero (per layer and in all)."""
    floats = {layer.name: layer for layer in float_graph.dense_layers()}
    per_layer = {}
    for layer in quantized.dense_layers():
        source = floats.get(layer.name)
        if source is None or source.weight.shape != layer.weight.shape:
            continue
        nonzero = source.weight != 0
        per_layer[layer.name] = {"float_nonzero": int(nonzero.sum()),
                                 "zeroed": int((nonzero & (layer.weight == 0)).sum())}
    total = sum(v["float_nonzero"] for v in per_layer.values())
    zeroed = sum(v["zeroed"] for v in per_layer.values())
    return {"float_nonzero": total, "zeroed": zeroed, "fraction": zeroed / total if total else 0.0,
            "layers": per_layer}


def float_outputs(float_graph: Graph, x: np.ndarray) -> np.ndarray:
    return float_forward(float_graph, x)


def task_of(graph: Graph, task: Optional[str] = None) -> str:
    """``task`` when given, else classification for a model ending in (Log)Softmax."""
    if task is not None:
        if task not in TASKS:
            raise OptionError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
        return task
    return "classification" if outputs_are_logits(graph) else "regression"


def measure(y_float: np.ndarray, y_int: np.ndarray, quantized: Graph, zeroed: Optional[dict],
            task: Optional[str] = None) -> dict:
    """The fidelity figures of the integer outputs ``y_int`` against the float ``y_float``."""
    y_float = np.asarray(y_float, dtype=np.float64).reshape(len(y_float), -1)
    y_real = to_real(np.asarray(y_int, dtype=np.int64), quantized.output_t).reshape(len(y_int), -1)
    error = np.abs(y_real - y_float)
    task = task_of(quantized, task)
    classifier = task == "classification" and y_float.shape[1] > 1
    figures = {
        "vectors": int(len(y_float)),
        "task": task,
        "classifier": classifier,
        "top1_agreement": float(np.mean(y_real.argmax(axis=1) == y_float.argmax(axis=1))) if classifier else None,
        "max_abs_error": float(error.max(initial=0.0)),
        "mean_abs_error": float(error.mean()) if error.size else 0.0,
        "zeroed_by_quantization": zeroed,
    }
    if task == "regression":
        low, high = (float(y_float.min()), float(y_float.max())) if y_float.size else (0.0, 0.0)
        spread = high - low
        noise, signal = float(np.sum(error ** 2)), float(np.sum(y_float ** 2))
        figures.update(
            output_range=[low, high],
            max_relative_error=figures["max_abs_error"] / spread if spread > 0 else None,
            mean_relative_error=figures["mean_abs_error"] / spread if spread > 0 else None,
            # None when the integer outputs equal the float ones (no noise) or the outputs are all zero
            sqnr_db=10.0 * float(np.log10(signal / noise)) if noise > 0 and signal > 0 else None)
    return figures


def _regression_line(fidelity: dict) -> str:
    low, high = fidelity["output_range"]
    parts = [f"max error {fidelity['max_abs_error']:.4g}"]
    if fidelity.get("max_relative_error") is not None:
        parts = [f"max error {fidelity['max_abs_error']:.4g} ({fidelity['max_relative_error']:.1%} of the output "
                 f"range [{low:.4g}, {high:.4g}])",
                 f"mean {fidelity['mean_abs_error']:.4g} ({fidelity['mean_relative_error']:.1%})"]
    sqnr = fidelity.get("sqnr_db")
    parts.append(f"SQNR {sqnr:.1f} dB" if sqnr is not None else "SQNR unbounded (no quantization error)")
    return ", ".join(parts)


def summary(fidelity: Optional[dict]) -> str:
    """The export's one-line summary of the figures ("" when there are none)."""
    if not fidelity:
        return ""
    if fidelity.get("top1_agreement") is not None:
        return f"top-1 agreement with the float model {fidelity['top1_agreement']:.1%}"
    if fidelity.get("task") == "regression":
        return f"against the float model: {_regression_line(fidelity)}"
    return ""


def warnings(fidelity: Optional[dict]) -> list[str]:
    if not fidelity:
        return []
    zeroed = fidelity.get("zeroed_by_quantization") or {}
    extra = f"; quantization rounded {zeroed['fraction']:.0%} of the nonzero weights to zero" if zeroed else ""
    hint = "; try more bits (--weight-bits, --activation-bits)"
    if fidelity.get("top1_agreement") is not None:
        agreement = fidelity["top1_agreement"]
        if agreement >= AGREEMENT_WARNING:
            return []
        return [f"the integer model agrees with the float model on the top class of only {agreement:.1%} of "
                f"{fidelity['vectors']} test vectors (below {AGREEMENT_WARNING:.0%}){extra}{hint}"]
    relative = fidelity.get("max_relative_error")
    if fidelity.get("task") != "regression" or relative is None or relative <= RELATIVE_ERROR_WARNING:
        return []
    return [f"the integer model's outputs differ from the float model's by up to {relative:.1%} of their range on "
            f"{fidelity['vectors']} test vectors (above {RELATIVE_ERROR_WARNING:.0%}: {_regression_line(fidelity)})"
            f"{extra}{hint}; a classifier that ends in logits: --task classification"]


def markdown(fidelity: Optional[dict]) -> list[str]:
    """The report section (a list of lines, empty when there is nothing to say)."""
    lines = ["## Fidelity (float model against the integer reference)", ""]
    if not fidelity:
        return lines + ["Not measured: no float model came with this export (a model quantized already, or "
                        "write_export called without float_graph).", ""]
    if fidelity.get("task"):
        lines.append(f"- task: {fidelity['task']}")
    if fidelity.get("top1_agreement") is not None:
        lines.append(f"- top-1 agreement: {fidelity['top1_agreement'] * 100:.1f} % of {fidelity['vectors']} test vectors")
    if fidelity.get("task") == "regression":
        lines.append(f"- output error on {fidelity['vectors']} test vectors: {_regression_line(fidelity)}")
    else:
        lines.append(f"- output error: max {fidelity['max_abs_error']:.4g}, mean {fidelity['mean_abs_error']:.4g} "
                     "(absolute)")
    zeroed = fidelity.get("zeroed_by_quantization")
    if zeroed:
        lines.append(f"- nonzero float weights quantized to zero: {zeroed['zeroed']} of {zeroed['float_nonzero']} "
                     f"({zeroed['fraction'] * 100:.1f} %)")
    lines += [f"- warning: {w}" for w in warnings(fidelity)]
    return lines + [""]
