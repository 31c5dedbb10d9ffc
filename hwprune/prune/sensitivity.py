"""Sensitivity scan: accuracy when one layer alone is pruned to each sparsity.

Which layers tolerate pruning, and how much, before a global or per-layer target is
chosen (Han et al. 2015, Fig. 5).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from hwprune.prune import schedules
from hwprune.prune.algorithms import _options, _rounds_bar
from hwprune.prune.criteria import compute_masks
from hwprune.prune.masks import apply_masks, prunable_modules
from hwprune.prune.train import evaluate


@dataclass(frozen=True)
class SensitivityTable:
    """``accuracy[layer][i]``: validation accuracy with only ``layer`` pruned to ``sparsities[i]``."""

    sparsities: tuple[float, ...]
    accuracy: dict[str, tuple[float, ...]]
    baseline: float

    def to_markdown(self) -> str:
        head = "| layer | " + " | ".join(f"{s:.0%}" for s in self.sparsities) + " |"
        rule = "|---|" + "---|" * len(self.sparsities)
        rows = [f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs) + " |" for name, accs in self.accuracy.items()]
        return "\n".join([f"dense baseline: {self.baseline:.3f}", "", head, rule, *rows])


def sensitivity_scan(model, x, y, x_val, y_val, sparsities, layers=None, method="magnitude", epochs=0,
                     criteria=None, **train) -> SensitivityTable:
    """Prune each of ``layers`` (default: every prunable module) alone to each sparsity and
    measure validation accuracy, after ``epochs`` of retraining on ``(x, y)`` (0: none)."""
    opts, criteria = _options(train), criteria or {}
    sparsities = tuple(schedules.check_sparsity(s) for s in sparsities)
    names = list(prunable_modules(model)) if layers is None else list(layers)
    prunable_modules(model, exclude=names)  # an unknown name is an OptionError here
    table = {}
    with _rounds_bar(len(names) * len(sparsities), "sensitivity", opts.progress) as bar:
        for name in names:
            row = []
            for s in sparsities:
                pruned = copy.deepcopy(model)
                apply_masks(pruned, compute_masks(pruned, {name: s}, method=method, seed=opts.seed, **criteria))
                if epochs:
                    opts.fit(pruned, x, y, epochs)
                row.append(evaluate(pruned, x_val, y_val))
                bar.update(1)
            table[name] = tuple(row)
    return SensitivityTable(sparsities, table, evaluate(model, x_val, y_val))
