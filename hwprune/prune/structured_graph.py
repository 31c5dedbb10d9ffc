"""Structured pruning of a graph: remove whole units (``prune.channels``) from the IR and
fine-tune what is left through its torch twin (``frontends.torch_twin``).

Filters are removed physically before fine-tuning, as in Li et al. 2017 (prune the
filters of lowest L1 norm, then retrain the smaller network): the graph shrinks, and
``train.fit`` trains the twin of the smaller graph. Tied channels go together (a filter on
one side of an ``Add`` takes the matching filter of the other side and every consumer's
column with it). ``rounds`` > 1 is iterative pruning: each round removes the same
fraction of what remains (``schedules.iterative``), then fine-tunes. ``schedule="gradual"``
removes units before every epoch, the target rising by ``schedules.polynomial_decay``
(Zhu & Gupta 2017, with ``algorithms.gradual``'s defaults: from the first epoch to 3/4 of
them, power 3), so the network adapts while it shrinks.

``sparsity`` is the fraction of the candidate units removed (the filters of convs, or the
neurons of Dense layers), per family for scope "layer", over all for scope "global". The
result reports the fraction of weights removed, overall and per layer, against the graph
it started from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hwprune.errors import OptionError
from hwprune.frontends.torch_twin import GraphTwin
from hwprune.ir.graph import Graph
from hwprune.prune import schedules
from hwprune.prune.channels import candidates, channel_units, choose, remove_units
from hwprune.prune.train import evaluate


@dataclass(frozen=True)
class UnitPruneResult:
    """``graph``: the smaller graph, fine-tuned; ``units``: the fraction of candidate units
    removed; ``sparsity`` and ``layers``: the fraction of weights removed (overall, per
    weighted layer); ``history``: one entry per round."""

    graph: Graph
    units: float
    sparsity: float
    layers: dict[str, float]
    train_accuracy: float
    history: tuple[dict, ...] = ()


def _split(epochs: int, rounds: int) -> list[int]:
    base, extra = divmod(epochs, rounds)
    return [base + (1 if r >= rounds - extra else 0) for r in range(rounds)]


def _plan(schedule: str, final: float, rounds: int, epochs: int) -> list[tuple[float, int]]:
    """(target unit sparsity, fine-tuning epochs) of each round."""
    if schedule == "iterative":
        if not isinstance(rounds, int) or rounds < 1:
            raise OptionError(f"rounds must be an integer >= 1, got {rounds!r}")
        return [(schedules.iterative(r, rounds, final), e) for r, e in enumerate(_split(epochs, rounds), start=1)]
    if schedule == "gradual":
        if not isinstance(epochs, int) or epochs < 1:
            raise OptionError(f"gradual unit removal fine-tunes after each removal: epochs must be >= 1, got {epochs!r}")
        end = max(1, round(0.75 * epochs))  # the target is reached before the last quarter of the epochs
        return [(schedules.polynomial_decay(e, 0.0, final, 0, end, 1, 3), 1) for e in range(1, epochs + 1)]
    raise OptionError(f"unit removal on a graph runs the iterative or gradual schedule, not {schedule!r}")


def prune_units(graph: Graph, x, y, sparsity: float, train, method: str = "filters", scope: str = "layer",
                rounds: int = 1, epochs: int = 10, dtype=None, schedule: str = "iterative") -> UnitPruneResult:
    """Remove ``sparsity`` of the ``method`` units of ``graph`` in ``rounds`` rounds
    (``schedule`` "iterative"; one round is one-shot) or before each of ``epochs`` epochs
    ("gradual"), fine-tuning ``epochs`` in all (``train``: ``algorithms.TrainOptions``); ``x``
    in the graph's source layout. ``dtype``: the twin's torch dtype (float32 by default)."""
    import torch

    dtype = dtype or torch.float32
    final = schedules.check_sparsity(sparsity)
    if scope not in ("layer", "global"):
        raise OptionError(f"unknown pruning scope {scope!r}; choose layer or global")
    plan = _plan(schedule, final, rounds, epochs)
    original = graph
    first = candidates(graph, channel_units(graph), method)
    if not first:
        kind = "Dense layers before the output" if method == "neurons" else "conv filters outside the model's inputs and outputs"
        raise OptionError(f"--method {method} found no {kind} to prune in model {graph.name!r}")
    sizes = Counter(u.family for u in first)
    removed: Counter = Counter()
    history, accuracy = [], None
    for r, (target, round_epochs) in enumerate(plan, start=1):
        units = candidates(graph, channel_units(graph), method)
        if scope == "layer":
            count = {f: round(target * n) - removed[f] for f, n in sizes.items()}
        else:
            count = round(target * len(first)) - sum(removed.values())
        chosen = choose(units, count, scope)
        graph = remove_units(graph, chosen)
        removed.update(u.family for u in chosen)
        accuracy = None
        if round_epochs:
            twin = GraphTwin(graph, dtype)
            accuracy = train.fit(twin, x, y, round_epochs)
            graph = twin.to_graph()
        history.append({"round": r, "target": target, "units_removed": sum(removed.values()),
                        "weights": graph.total_weights, "train_accuracy": accuracy, "epochs": round_epochs})
    if accuracy is None:
        accuracy = evaluate(GraphTwin(graph, dtype), x, y)
    before = {layer.name: layer.weight.size for layer in original.weighted_layers()}
    layers = {layer.name: 1.0 - layer.weight.size / before[layer.name] for layer in graph.weighted_layers()}
    return UnitPruneResult(graph, sum(removed.values()) / len(first), 1.0 - graph.total_weights / original.total_weights,
                           layers, accuracy, tuple(history))
