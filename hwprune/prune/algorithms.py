"""Pruning algorithms: when to prune, how much, and how to retrain.

Every algorithm copies the model it is given (the caller's model is never changed),
trains with ``train.fit`` and returns a ``PruneResult``. Budgets are in epochs over the
training set so that arms compare at equal cost:

- ``oneshot``: Han et al. 2015: prune a trained model once, retrain ``epochs`` with the
  mask fixed.
- ``iterative``: ``rounds`` rounds of prune + retrain, each removing the same fraction of
  what remains; the ``epochs`` are split over the rounds (same total as one-shot).
- ``gradual``: Zhu & Gupta 2017: the sparsity follows ``polynomial_decay`` during the
  ``epochs`` of fine-tuning, the masks updated every ``frequency`` steps.
``hwprune.prune.rewinding`` holds the algorithms that rewind:

- ``lottery``: Frankle & Carbin 2019, iterative magnitude pruning from a model at init:
  train, prune what remains by a fixed fraction, rewind the survivors to their values
  at iteration ``k`` (0 = init; Frankle et al. 2020 "Linear mode connectivity"), repeat;
  each round trains the same ``epochs`` (minus the ``k`` replayed steps).
  ``reinit=True`` is the control arm: the final mask, a fresh random init.
- ``lr_rewinding`` (or ``lottery(rewind="lr")`` from init): Renda et al. 2020: like
  lottery, but the trained weights are kept and only the learning-rate schedule
  (``hwprune.prune.lr``) is replayed from step ``k``.

``sensitivity_scan`` (accuracy when one layer alone is pruned to each sparsity) is in
``hwprune.prune.sensitivity``.
"""

from __future__ import annotations

import copy
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

from hwprune.errors import OptionError
from hwprune.prune import schedules
from hwprune.prune.collapse import check_collapse
from hwprune.prune.criteria import compute_masks
from hwprune.prune.masks import (
    apply_masks, get_masks, prunable_modules, strip_masks,
)
from hwprune.prune.masks import sparsity as measured_sparsity
from hwprune.prune.train import as_tensors, evaluate, fit, steps_per_epoch


class LayerCollapseWarning(UserWarning):
    """A layer pruned so far that the network can no longer pass a signal through it."""


@dataclass(frozen=True)
class PruneResult:
    """The pruned model and what happened to it.

    ``sparsity`` is achieved over the weights of the prunable modules (exact zeros of
    the effective weights); ``layers`` gives it per module; ``history`` has one entry
    per pruning round or event (round, target, sparsity, train_accuracy, epochs);
    ``warnings`` holds the ``collapse.CollapseWarning`` findings of the final masks (each
    also emitted with ``warnings.warn`` as a ``LayerCollapseWarning``).
    """

    model: object
    sparsity: float
    layers: dict[str, float]
    train_accuracy: float
    masks: dict[str, object]
    history: tuple[dict, ...] = ()
    warnings: tuple = ()
    algorithm: str = ""


@dataclass(frozen=True)
class TrainOptions:
    """How ``fit`` trains, shared by every round of an algorithm."""

    lr: float = 1e-3
    batch_size: int = 64
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: object = None
    seed: int = 0
    progress: bool = False
    threads: Optional[int] = 1  # torch CPU threads (train.fit); None keeps torch's setting
    warmup: int = 0

    def fit(self, model, x, y, epochs, **kwargs) -> float:
        return fit(model, x, y, epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                   optimizer=self.optimizer, weight_decay=self.weight_decay, lr_schedule=self.lr_schedule,
                   warmup=self.warmup, progress=self.progress, threads=self.threads, **kwargs)


def _options(kwargs) -> TrainOptions:
    known = {"lr", "batch_size", "optimizer", "weight_decay", "lr_schedule", "seed", "progress", "threads",
             "warmup"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise OptionError(f"unknown training option(s) {unknown}; known are {sorted(known)}")
    return TrainOptions(**kwargs)


def _check_epochs(epochs, what="epochs", minimum=0) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < minimum:
        raise OptionError(f"{what} must be an integer >= {minimum}, got {epochs!r}")
    return epochs


def _finish(model, x, y, train_accuracy, history, algorithm, strip, exclude=()) -> PruneResult:
    findings = check_collapse(model)
    for finding in findings:
        warnings.warn(str(finding), LayerCollapseWarning, stacklevel=3)
    masks = get_masks(model)
    if strip:
        strip_masks(model)
    overall, layers = measured_sparsity(model, exclude)
    if train_accuracy is None:
        train_accuracy = evaluate(model, x, y)
    return PruneResult(model, overall, layers, train_accuracy, masks, tuple(history), tuple(findings), algorithm)


def _prune(model, target, method, scope, exclude, seed, criteria) -> None:
    apply_masks(model, compute_masks(model, target, method=method, scope=scope, exclude=exclude, seed=seed, **criteria))


def _record(history, model, exclude, **entry) -> None:
    entry["sparsity"] = measured_sparsity(model, exclude)[0]
    history.append(entry)


def _rounds_bar(total, desc, progress):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="round", file=sys.stderr, disable=None if progress else True)


def oneshot(model, x, y, sparsity, method="magnitude", scope="layer", epochs=10, exclude=(), strip=False,
            criteria=None, **train) -> PruneResult:
    """Prune a trained ``model`` to ``sparsity`` once, then retrain ``epochs`` with the mask fixed."""
    opts, criteria = _options(train), criteria or {}
    epochs = _check_epochs(epochs)
    model = copy.deepcopy(model)
    _prune(model, schedules.check_sparsity(sparsity), method, scope, exclude, opts.seed, criteria)
    history = []
    accuracy = opts.fit(model, x, y, epochs) if epochs else None
    _record(history, model, exclude, round=1, target=sparsity, train_accuracy=accuracy, epochs=epochs)
    return _finish(model, x, y, accuracy, history, "oneshot", strip, exclude)


def _split(epochs: int, rounds: int) -> list[int]:
    """``epochs`` over ``rounds`` as evenly as possible, the remainder to the last rounds."""
    base, extra = divmod(epochs, rounds)
    return [base + (1 if r >= rounds - extra else 0) for r in range(rounds)]


def iterative(model, x, y, sparsity, rounds=5, method="magnitude", scope="layer", epochs=10, exclude=(),
              strip=False, criteria=None, on_round=None, **train) -> PruneResult:
    """``rounds`` rounds of prune + retrain on a trained ``model``; ``epochs`` in total.

    ``on_round(round, model)`` (also for ``lottery`` and ``lr_rewinding``) runs after each
    round's training, e.g. to measure test accuracy along the way.
    """
    opts, criteria = _options(train), criteria or {}
    final = schedules.check_sparsity(sparsity)
    _check_epochs(rounds, "rounds", 1)
    epochs = _check_epochs(epochs)
    model = copy.deepcopy(model)
    history, accuracy = [], None
    with _rounds_bar(rounds, "iterative", opts.progress) as bar:
        for r, round_epochs in enumerate(_split(epochs, rounds), start=1):
            target = schedules.iterative(r, rounds, final)
            _prune(model, target, method, scope, exclude, opts.seed + r, criteria)
            accuracy = opts.fit(model, x, y, round_epochs) if round_epochs else None
            _record(history, model, exclude, round=r, target=target, train_accuracy=accuracy, epochs=round_epochs)
            if on_round is not None:
                on_round(r, model)
            bar.update(1)
    return _finish(model, x, y, accuracy, history, "iterative", strip, exclude)


def gradual(model, x, y, sparsity, method="magnitude", scope="layer", epochs=10, initial_sparsity=0.0,
            begin_fraction=0.0, end_fraction=0.75, frequency=None, power=3, exclude=(), strip=False,
            criteria=None, **train) -> PruneResult:
    """Fine-tune a trained ``model`` for ``epochs`` while sparsity rises by ``polynomial_decay``.

    Pruning starts at ``begin_fraction`` and ends at ``end_fraction`` of the steps; the
    rest fine-tune with the final mask. ``frequency`` (steps between mask updates)
    defaults to one epoch.
    """
    opts, criteria = _options(train), criteria or {}
    final = schedules.check_sparsity(sparsity)
    epochs = _check_epochs(epochs, minimum=1)
    if not 0.0 <= begin_fraction <= end_fraction <= 1.0:
        raise OptionError(f"need 0 <= begin_fraction <= end_fraction <= 1, got {begin_fraction} and {end_fraction}")
    x_t, y_t = as_tensors(x, y)
    per_epoch = steps_per_epoch(len(x_t), opts.batch_size)
    total = epochs * per_epoch
    begin, end = round(begin_fraction * total), round(end_fraction * total)
    frequency = per_epoch if frequency is None else frequency
    schedules.polynomial_decay(0, initial_sparsity, final, begin, end, frequency, power)  # checks the options
    import torch

    model = copy.deepcopy(model)
    # Masks exist before the optimizer is made, so it holds the parameters that training
    # will update; all-ones masks change nothing.
    apply_masks(model, {name: torch.ones_like(m.weight, dtype=torch.bool) for name, m in prunable_modules(model, exclude).items()})
    history = []
    state = {"target": None}

    def update(step, m):
        target = schedules.polynomial_decay(step, initial_sparsity, final, begin, end, frequency, power)
        if target != state["target"]:
            _prune(m, target, method, scope, exclude, opts.seed + step, criteria)
            state["target"] = target
            _record(history, m, exclude, step=step, target=target)

    accuracy = opts.fit(model, x_t, y_t, epochs, callback=update)
    if state["target"] != final:  # the schedule's end lies beyond the last step
        _prune(model, final, method, scope, exclude, opts.seed + total, criteria)
        _record(history, model, exclude, step=total, target=final)
        accuracy = None
    return _finish(model, x_t, y_t, accuracy, history, "gradual", strip, exclude)
