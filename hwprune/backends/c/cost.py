"""How many instructions a Dense kernel executes, per format and core: a cost model.

``--optimize speed`` needs, per layer and format, the time one inference takes. Measured
counts come from running the firmware in the Cortex-M emulator; until a measurement is
available this model stands in for it, and says so (``ESTIMATED``):

    instructions = per_entry * stored entries + per_row * rows + per_weight * rows * columns

Coefficients were fitted (least squares) to emulator counts of 256x256 int8 layers at
50, 90 and 95 % sparsity, clang -O2, by ``python benchmarks/kernels.py --fit``; the
table in docs/kernels.md shows the counts. A core missing here uses the M4's row for
cores with the DSP extension and the M0+'s otherwise. Entries are what the kernel walks:
nonzeros, plus rel's filler entries and nm's padding slots.
"""

from __future__ import annotations

import numpy as np

from hwprune.backends.c.formats import LayerStorage

ESTIMATED = "estimated by the per-format cost model (hwprune/backends/c/cost.py), not measured"
DSP_CORES = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")

# (core, format) -> (per_entry, per_row, per_weight)
COEFFICIENTS = {
    ("cortex-m4", "dense"): (0.0, 0.0, 1.89),
    ("cortex-m4", "csr"): (4.6, 40.0, 0.0),
    ("cortex-m4", "bitmask"): (20.0, 10.0, 1.0),
    ("cortex-m4", "rel"): (21.0, 10.0, 0.0),
    ("cortex-m4", "rice"): (38.0, 10.0, 0.0),
    ("cortex-m4", "nm"): (6.0, 12.0, 0.0),
    ("cortex-m4", "unrolled"): (2.6, 6.0, 0.0),
    ("cortex-m0plus", "dense"): (0.0, 0.0, 5.5),
    ("cortex-m0plus", "csr"): (8.0, 40.0, 0.0),
    ("cortex-m0plus", "bitmask"): (25.0, 10.0, 1.5),
    ("cortex-m0plus", "rel"): (25.0, 10.0, 0.0),
    ("cortex-m0plus", "rice"): (45.0, 10.0, 0.0),
    ("cortex-m0plus", "nm"): (9.0, 12.0, 0.0),
    ("cortex-m0plus", "unrolled"): (4.0, 8.0, 0.0),
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
    per_entry, per_row, per_weight = COEFFICIENTS[(core_row(core), storage.format)]
    return (per_entry * stored_entries(storage) + per_row * storage.out_features
            + per_weight * storage.total_weights)


def fastest(storages: list[LayerStorage], core: str) -> LayerStorage:
    return min(storages, key=lambda s: (instructions(s, core), s.weight_bytes))


def choose_for_speed(candidates: list[list[LayerStorage]], core: str, flash_budget: int | None) -> list[LayerStorage]:
    """Per layer the fastest format; while the weights exceed ``flash_budget`` bytes, the
    layer whose next smaller format costs the fewest extra instructions per byte saved
    gives way. Without any fitting choice, the smallest format of every layer."""
    chosen = [fastest(c, core) for c in candidates]
    if flash_budget is None:
        return chosen
    while sum(s.weight_bytes for s in chosen) > flash_budget:
        best = None
        for i, (options, current) in enumerate(zip(candidates, chosen)):
            for s in options:
                saved = current.weight_bytes - s.weight_bytes
                if saved <= 0:
                    continue
                price = (instructions(s, core) - instructions(current, core)) / saved
                if best is None or price < best[0]:
                    best = (price, i, s)
        if best is None:
            break
        chosen[best[1]] = best[2]
    return chosen


def totals(storages: list[LayerStorage], core: str) -> float:
    return float(np.sum([instructions(s, core) for s in storages]))
