"""Fidelity: does the integer model still compute the float model?

Bit-exact says that the C equals the integer reference; it says nothing about how far
quantization moved the reference from the float model it came from. On the test vectors
this module measures the float model against the integer reference: top-1 agreement
when the output is a vector of class scores (more than one element), max and mean
absolute error always, and the fraction of nonzero float weights that quantization
rounded to zero. Below ``AGREEMENT_WARNING`` the export warns with the figure and a hint.

It also refuses absurd fixed-point ranges (``MAX_INT_BITS``): calibration data of 1e30
would otherwise give an input type with a hundred integer bits without a word.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hwprune.errors import FixedPointError
from hwprune.ir.graph import Graph
from hwprune.quant.fixed import to_real

AGREEMENT_WARNING = 0.90
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
    from hwprune.quant.calibrate import float_forward

    return float_forward(float_graph, x)


def measure(y_float: np.ndarray, y_int: np.ndarray, quantized: Graph, zeroed: Optional[dict]) -> dict:
    """The fidelity figures of the integer outputs ``y_int`` against the float ``y_float``."""
    y_float = np.asarray(y_float, dtype=np.float64).reshape(len(y_float), -1)
    y_real = to_real(np.asarray(y_int, dtype=np.int64), quantized.output_t).reshape(len(y_int), -1)
    error = np.abs(y_real - y_float)
    classifier = y_float.shape[1] > 1
    return {
        "vectors": int(len(y_float)),
        "classifier": classifier,
        "top1_agreement": float(np.mean(y_real.argmax(axis=1) == y_float.argmax(axis=1))) if classifier else None,
        "max_abs_error": float(error.max(initial=0.0)),
        "mean_abs_error": float(error.mean()) if error.size else 0.0,
        "zeroed_by_quantization": zeroed,
    }


def warnings(fidelity: Optional[dict]) -> list[str]:
    if not fidelity or fidelity.get("top1_agreement") is None:
        return []
    agreement = fidelity["top1_agreement"]
    if agreement >= AGREEMENT_WARNING:
        return []
    zeroed = fidelity.get("zeroed_by_quantization") or {}
    extra = f"; quantization rounded {zeroed['fraction']:.0%} of the nonzero weights to zero" if zeroed else ""
    return [f"the integer model agrees with the float model on the top class of only {agreement:.1%} of "
            f"{fidelity['vectors']} test vectors (below {AGREEMENT_WARNING:.0%}){extra}; try more bits "
            "(--weight-bits, --activation-bits)"]


def markdown(fidelity: Optional[dict]) -> list[str]:
    """The report section (a list of lines, empty when there is nothing to say)."""
    lines = ["## Fidelity (float model against the integer reference)", ""]
    if not fidelity:
        return lines + ["Not measured: no float model came with this export (a model quantized already, or "
                        "write_export called without float_graph).", ""]
    if fidelity.get("top1_agreement") is not None:
        lines.append(f"- top-1 agreement: {fidelity['top1_agreement'] * 100:.1f} % of {fidelity['vectors']} test vectors")
    lines.append(f"- output error: max {fidelity['max_abs_error']:.4g}, mean {fidelity['mean_abs_error']:.4g} (absolute)")
    zeroed = fidelity.get("zeroed_by_quantization")
    if zeroed:
        lines.append(f"- nonzero float weights quantized to zero: {zeroed['zeroed']} of {zeroed['float_nonzero']} "
                     f"({zeroed['fraction'] * 100:.1f} %)")
    lines += [f"- warning: {w}" for w in warnings(fidelity)]
    return lines + [""]
