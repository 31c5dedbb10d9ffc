"""Pruning with rewinding: lottery tickets (weights rewound) and learning-rate rewinding
(``hwprune.prune.algorithms``' docstring describes both beside the other algorithms)."""

from __future__ import annotations

import copy

from hwprune.errors import OptionError
from hwprune.prune import schedules
from hwprune.prune.algorithms import (
    PruneResult, _check_epochs, _finish, _options, _prune, _record, _rounds_bar,
)
from hwprune.prune.masks import apply_masks, get_masks, load_original_weights, original_weights, prunable_modules
from hwprune.prune.train import as_tensors, steps_per_epoch


def _other_parameters(model) -> dict:
    """Copies of every parameter that is not a prunable module's weight (biases, ...)."""
    weights = {f"{name}.weight" for name in prunable_modules(model)}
    weights |= {f"{name}.parametrizations.weight.original" for name in prunable_modules(model)}
    return {n: p.detach().clone() for n, p in model.named_parameters() if n not in weights}


def _snapshot(model) -> tuple[dict, dict]:
    return original_weights(model), _other_parameters(model)


def _rewind(model, snapshot) -> None:
    import torch

    weights, others = snapshot
    load_original_weights(model, weights)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in others.items():
            params[name].copy_(value)


def _train_recording(opts, model, x, y, epochs, rewind_iteration):
    """Train from step 0 and return (accuracy, snapshot of the weights after ``k`` steps)."""
    if rewind_iteration == 0:
        snapshot = _snapshot(model)
        return opts.fit(model, x, y, epochs), snapshot
    seen = {}

    def record(step, m):
        if step == rewind_iteration:
            seen["snapshot"] = _snapshot(m)

    accuracy = opts.fit(model, x, y, epochs, callback=record)
    return accuracy, seen["snapshot"]


def reinitialized(model, seed: int):
    """A copy of ``model`` with fresh random parameters (each module's ``reset_parameters``)."""
    import torch

    model = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model


_REINIT_TAG = int.from_bytes(b"reinit", "big")


def default_reinit_seed(seed: int) -> int:
    """The seed of the random-reinitialization control of a run with ``seed``.

    ``seed + 1`` would draw exactly the initial weights of the next seed of a multi-seed
    study, making its pairs dependent. This is a SeedSequence hash of (seed, "reinit")
    with bit 63 set: torch takes seeds up to 2**64 - 1, so it never equals a seed below
    2**63 (every seed a study uses), and two seeds give different values unless their
    63-bit hashes collide.
    """
    import numpy as np

    state = np.random.SeedSequence([int(seed) % 2**64, _REINIT_TAG]).generate_state(2, dtype=np.uint32)
    return (1 << 63) | (int(state[0]) << 31) ^ int(state[1])


def _check_rewind(k, x, epochs, batch_size) -> int:
    total = epochs * steps_per_epoch(len(x), batch_size)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < total:
        raise OptionError(f"rewind iteration must be an integer from 0 to {total - 1} (the steps of one run), got {k!r}")
    return k


REWIND = ("weights", "lr")


def _rewinding_inputs(train, criteria, sparsity, rounds, epochs, x, y, rewind_iteration):
    """The checked arguments that lottery tickets and LR rewinding share:
    (options, criteria, final sparsity, epochs, x and y as tensors, rewind step)."""
    opts, criteria = _options(train), criteria or {}
    final = schedules.check_sparsity(sparsity)
    _check_epochs(rounds, "rounds", 1)
    epochs = _check_epochs(epochs, minimum=1)
    x_t, y_t = as_tensors(x, y)
    k = _check_rewind(rewind_iteration, x_t, epochs, opts.batch_size)
    return opts, criteria, final, epochs, x_t, y_t, k


def _prune_and_replay(model, x_t, y_t, opts, final, rounds, epochs, k, scope, exclude, criteria, history, on_round,
                      bar, snapshot=None):
    """``rounds`` rounds of: prune by magnitude to the next ``schedules.iterative`` target,
    reset the weights to ``snapshot`` if given (weight rewinding; else they are kept: LR
    rewinding), and train steps ``k`` to the end of an ``epochs`` run, whose learning rates
    (and minibatches) are those of the original run from step ``k`` on."""
    accuracy = None
    for r in range(1, rounds + 1):
        target = schedules.iterative(r, rounds, final)
        _prune(model, target, "magnitude", scope, exclude, opts.seed, criteria)
        if snapshot is not None:
            _rewind(model, snapshot)
        accuracy = opts.fit(model, x_t, y_t, epochs, start_step=k)
        _record(history, model, exclude, round=r, target=target, train_accuracy=accuracy, epochs=epochs)
        if on_round is not None:
            on_round(r, model)
        bar.update(1)
    return accuracy


def lottery(model_at_init, x, y, sparsity, rounds=5, epochs=10, rewind_iteration=0, scope="layer", reinit=False,
            reinit_seed=None, exclude=(), strip=False, criteria=None, on_round=None, rewind="weights",
            **train) -> PruneResult:
    """Iterative magnitude pruning with rewinding from ``model_at_init``.

    Trains densely, then ``rounds`` times: prune by magnitude to the next sparsity of
    ``schedules.iterative``, and retrain the remaining steps after ``rewind_iteration``
    with the learning rates of the dense run from that step on. ``rewind="weights"``
    (lottery tickets) first resets the survivors (and the biases) to their values after
    ``rewind_iteration`` steps of the dense run; ``rewind="lr"`` (Renda et al. 2020)
    keeps the trained weights and rewinds only the learning-rate schedule, which needs a
    non-constant ``lr_schedule`` to differ from plain retraining. Both cost the same
    steps. With ``reinit=True`` the final mask is applied to a freshly initialized copy
    instead (seed ``reinit_seed``, default ``default_reinit_seed(seed)``), trained for
    all ``epochs``.
    """
    if rewind not in REWIND:
        raise OptionError(f"rewind must be one of {', '.join(REWIND)}, got {rewind!r}")
    opts, criteria, final, epochs, x_t, y_t, k = _rewinding_inputs(
        train, criteria, sparsity, rounds, epochs, x, y, rewind_iteration)
    model = copy.deepcopy(model_at_init)
    history = []
    name = "lottery" if rewind == "weights" else "lottery-lr-rewinding"
    with _rounds_bar(rounds + 1, name, opts.progress) as bar:
        if rewind == "weights":
            accuracy, snapshot = _train_recording(opts, model, x_t, y_t, epochs, k)
        else:
            accuracy, snapshot = opts.fit(model, x_t, y_t, epochs), None
        _record(history, model, exclude, round=0, target=0.0, train_accuracy=accuracy, epochs=epochs)
        if on_round is not None:
            on_round(0, model)
        bar.update(1)
        accuracy = _prune_and_replay(model, x_t, y_t, opts, final, rounds, epochs, k, scope, exclude, criteria,
                                     history, on_round, bar, snapshot)
    if not reinit:
        return _finish(model, x_t, y_t, accuracy, history, name, strip, exclude)
    control = train_with_mask(model_at_init, get_masks(model), x_t, y_t, epochs, reinit=True,
                              reinit_seed=reinit_seed, strip=strip, **train)
    return PruneResult(control.model, control.sparsity, control.layers, control.train_accuracy, control.masks,
                       tuple(history), control.warnings, f"{name}-reinit")


def train_with_mask(model, masks, x, y, epochs, reinit=False, reinit_seed=None, strip=False, **train) -> PruneResult:
    """Train a copy of ``model`` (or of a fresh init of it) for ``epochs`` with ``masks`` fixed.

    The fresh init draws from ``reinit_seed``, by default ``default_reinit_seed(seed)``."""
    opts = _options(train)
    epochs = _check_epochs(epochs)
    if reinit:
        model = reinitialized(model, default_reinit_seed(opts.seed) if reinit_seed is None else reinit_seed)
    else:
        model = copy.deepcopy(model)
    apply_masks(model, masks)
    accuracy = opts.fit(model, x, y, epochs) if epochs else None
    return _finish(model, x, y, accuracy, [], "reinit" if reinit else "masked", strip)


def lr_rewinding(model, x, y, sparsity, rounds=5, epochs=10, rewind_iteration=0, scope="layer", exclude=(),
                 strip=False, criteria=None, on_round=None, **train) -> PruneResult:
    """Renda et al. 2020: ``rounds`` times prune a trained ``model`` by magnitude and retrain it
    (weights kept) with the learning-rate schedule replayed from step ``rewind_iteration``.

    Pass the ``lr_schedule`` (and ``warmup``) that ``model`` was trained with for ``epochs``;
    with a constant rate this is iterative pruning with ``epochs`` of retraining per round.
    ``lottery(..., rewind="lr")`` does the same from the network at initialization.
    """
    opts, criteria, final, epochs, x_t, y_t, k = _rewinding_inputs(
        train, criteria, sparsity, rounds, epochs, x, y, rewind_iteration)
    model = copy.deepcopy(model)
    history = []
    with _rounds_bar(rounds, "lr-rewinding", opts.progress) as bar:
        accuracy = _prune_and_replay(model, x_t, y_t, opts, final, rounds, epochs, k, scope, exclude, criteria,
                                     history, on_round, bar)
    return _finish(model, x_t, y_t, accuracy, history, "lr-rewinding", strip, exclude)
