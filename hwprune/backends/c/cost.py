"""How many instructions a Dense kernel executes, per format and core: a cost model.

``--optimize speed`` needs, per layer and format, the time one inference takes. Measured
counts come from running the firmware in the Cortex-M emulator; until a measurement is
available this model stands in for it, and says so (``ESTIMATED``):

    instructions = per_entry * stored entries + per_row * rows + per_weight * rows * columns

Coefficients were fitted (least squares) to emulator counts of 256x256 int8 layers at
50, 90 and 95 % sparsity, clang -O2, by ``python benchmarks/kernels.py --fit`` (bitmask
walks every mask chunk: per weight, not per row); the table in docs/kernels.md shows the
counts. A core missing here (the M33) uses the M4's row for cores with the DSP extension
and the M0+'s otherwise. Entries are what the kernel walks: nonzeros, plus rel's filler
entries and nm's padding slots.

Conv kernels have coefficients of their own (``CONV_COEFFICIENTS``), per output position,
times the layer's output positions (``LayerStorage.positions``; 1 when the storage was
encoded without the layer's input shape). They were fitted by ``python
benchmarks/mcu_kernels.py --cases cnn --formats dense,csr,csro`` over the two convs of its
CNN at 0, 50, 90 and 95 %; "per_row" is per filter, "per_weight" per filter-matrix entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

if TYPE_CHECKING:  # for the annotations only: the format registry's package imports this module (formats.choose)
    from hwprune.backends.c.formats.core import LayerStorage

ESTIMATED = "estimated by the per-format cost model (hwprune/backends/c/cost.py), not measured"
MEASURED = "measured in the Cortex-M emulator (cycles per inference, per layer)"  # harness.format_speed
DSP_CORES = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")

# (core, format) -> (per_entry, per_row, per_weight), fitted on 2026-11-30 (docs/kernels.md).
COEFFICIENTS = {
    ("cortex-m0plus", "dense"): (0.0, 0.0, 5.6),
    ("cortex-m0plus", "csr"): (7.75, 65.75, 0.0),
    ("cortex-m0plus", "bitmask"): (14.28, 0.0, 2.15),
    ("cortex-m0plus", "rel"): (33.91, 41.07, 0.0),
    ("cortex-m0plus", "rice"): (44.32, 279.51, 0.0),
    ("cortex-m0plus", "nm"): (13.7, 0.11, 0.0),
    ("cortex-m0plus", "unrolled"): (4.51, 16.05, 0.0),
    ("cortex-m0plus", "csr8"): (7.25, 39.7, 0.0),
    ("cortex-m4", "dense"): (0.0, 0.0, 1.89),
    ("cortex-m4", "csr"): (4.5, 42.74, 0.0),
    ("cortex-m4", "bitmask"): (8.76, 0.0, 1.05),
    ("cortex-m4", "rel"): (20.13, 0.47, 0.0),
    ("cortex-m4", "rice"): (33.35, 107.49, 0.0),
    ("cortex-m4", "nm"): (6.41, 0.05, 0.0),
    ("cortex-m4", "unrolled"): (2.62, 5.26, 0.0),
    ("cortex-m4", "csr8"): (4.25, 13.7, 0.0),
    ("cortex-m7", "dense"): (0.0, 0.0, 1.7),
    ("cortex-m7", "csr"): (4.51, 47.52, 0.0),
    ("cortex-m7", "bitmask"): (8.78, 0.0, 1.2),
    ("cortex-m7", "rel"): (20.13, 2.47, 0.0),
    ("cortex-m7", "rice"): (35.99, 22.16, 0.0),
    ("cortex-m7", "nm"): (6.47, 0.05, 0.0),
    ("cortex-m7", "unrolled"): (2.53, 6.46, 0.0),
    ("cortex-m7", "csr8"): (4.25, 13.45, 0.0),
}


# (core, conv format) -> (per_entry, per_filter, per_weight) per output position, fitted on
# 2026-11-30 (docs/mcu.md). csr's conv kernel decodes and checks every nonzero's tap.
CONV_COEFFICIENTS = {
    ("cortex-m0plus", "csr"): (41.53, 70.33, 0.0),
    ("cortex-m0plus", "csro"): (7.87, 36.09, 0.0),
    ("cortex-m0plus", "dense"): (0.0, 0.0, 5.46),
    ("cortex-m4", "csr"): (21.08, 52.89, 0.0),
    ("cortex-m4", "csro"): (3.39, 18.38, 0.0),
    ("cortex-m4", "dense"): (0.0, 0.0, 1.82),
    ("cortex-m7", "csr"): (21.08, 53.6, 0.0),
    ("cortex-m7", "csro"): (3.4, 19.38, 0.0),
    ("cortex-m7", "dense"): (0.0, 0.0, 1.77),
}


def stored_entries(storage: LayerStorage) -> int:
    """Entries the kernel walks: values stored (with rel's fillers and nm's padding)."""
    if storage.format == "dense":
        return storage.total_weights
    values = [a for a in storage.arrays if a.name == "values"]
    return int(values[0].data.size) if values else storage.nonzero_weights


def core_row(core: str) -> str:
    core = core.lower().replace("_", "-").replace("+", "plus")
    if any(core == c for c, _ in COEFFICIENTS):
        return core
    return "cortex-m4" if core in DSP_CORES else "cortex-m0plus"


def instructions(storage: LayerStorage, core: str = "cortex-m4") -> float:
    table = CONV_COEFFICIENTS if storage.family == "conv" else COEFFICIENTS
    per_entry, per_row, per_weight = table[(core_row(core), storage.format)]
    return storage.positions * (per_entry * stored_entries(storage) + per_row * storage.out_features
                                + per_weight * storage.total_weights)


def choose_for_speed(candidates: list[list[LayerStorage]], core: str, flash_budget: int | None,
                     cost_of: Optional[Callable[[LayerStorage], float]] = None) -> list[LayerStorage]:
    """Per layer the fastest format (by ``cost_of``, default this model's instructions);
    while the weights exceed ``flash_budget`` bytes, the layer whose next smaller format
    costs the fewest extra cycles per byte saved gives way. Without any fitting choice,
    the smallest format of every layer."""
    time = cost_of or (lambda s: instructions(s, core))
    chosen = [min(c, key=lambda s: (time(s), s.weight_bytes)) for c in candidates]
    if flash_budget is None:
        return chosen
    while sum(s.weight_bytes for s in chosen) > flash_budget:
        best = None
        for i, (options, current) in enumerate(zip(candidates, chosen)):
            for s in options:
                saved = current.weight_bytes - s.weight_bytes
                if saved <= 0:
                    continue
                price = (time(s) - time(current)) / saved
                if best is None or price < best[0]:
                    best = (price, i, s)
        if best is None:
            break
        chosen[best[1]] = best[2]
    return chosen


def totals(storages: list[LayerStorage], core: str) -> float:
    return float(np.sum([instructions(s, core) for s in storages]))
