"""Pruning: masks on torch modules, which weights to remove, when, and how to retrain.

- ``masks``: masks as weight parametrizations (apply, get, strip, measure sparsity);
- ``criteria``: ``compute_masks`` (magnitude, random, neurons, filters, N:M; layer or global);
- ``collapse``: ``check_collapse`` finds layers and classes that pruning cut off;
- ``structured``: ``remove_pruned_neurons`` makes the pruned network physically smaller;
- ``graph``: the same on an IR graph (``remove_dead_neurons``, ``prune_graph``), as export does;
- ``dead_channels``: ``remove_dead_channels``, a quantized graph without its constant channels;
- ``schedules``: sparsity as a pure function of the step or round (``schedules.iterative``;
  the name ``iterative`` here is the algorithm);
- ``lr``: learning-rate schedules (constant, step, cosine, onecycle; warm-up), pure
  functions of the step, so that a resumed run replays them (LR rewinding);
- ``train``: ``fit``/``evaluate`` and small reference models;
- ``algorithms``: one-shot, iterative, gradual, lottery ticket, LR rewinding;
- ``sensitivity``: the per-layer sensitivity scan.
"""

import importlib

# Where each public name lives. They are imported on first use (PEP 562), so that the
# graph-only parts (``structured``, ``schedules``) do not pull in torch, which takes
# a second to import.
_HOMES = {
    "algorithms": ("LayerCollapseWarning", "PruneResult", "default_reinit_seed", "gradual",
                   "iterative", "lottery", "lr_rewinding", "oneshot", "reinitialized", "train_with_mask"),
    "sensitivity": ("SensitivityTable", "sensitivity_scan"),
    "collapse": ("CollapseWarning", "check_collapse"),
    "criteria": ("METHODS", "SCOPES", "compute_masks"),
    "masks": ("apply_masks", "get_masks", "load_original_weights", "original_weights", "prunable_modules",
              "sparsity", "strip_masks"),
    "schedules": ("check_sparsity", "constant", "per_round_fraction", "polynomial_decay"),
    "structured": ("remove_pruned_neurons",),
    "train": ("evaluate", "fit", "make_cnn", "make_mlp"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name):
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME_OF))


__all__ = [
    "CollapseWarning", "LayerCollapseWarning", "METHODS", "PruneResult", "SCOPES", "SensitivityTable",
    "apply_masks", "check_collapse", "check_sparsity", "compute_masks", "constant", "default_reinit_seed", "evaluate", "fit",
    "get_masks", "gradual", "iterative", "load_original_weights", "lottery", "lr_rewinding", "make_cnn",
    "make_mlp", "oneshot", "original_weights", "per_round_fraction", "polynomial_decay", "prunable_modules",
    "reinitialized", "remove_pruned_neurons", "sensitivity_scan", "sparsity", "strip_masks", "train_with_mask",
]
