"""Structured pruning of a graph: remove whole units (``prune.channels``) from the IR and
fine-tune what is left through its torch twin (``frontends.torch_twin``).

Filters are removed physically before fine-tuning, as in Li et al. 2017 (prune the
filters of lowest L1 norm, then retrain the smaller network): the graph shrinks, and
``train.fit`` trains the twin of the smaller graph. Tied channels go together (a filter on
one side of an ``Add`` takes the matching filter of the other side and every consumer's
column with it). ``rounds`` > 1 is iterative pruning: each round removes the same
fraction of what remains (``schedules.iterative``), then fine-tunes.

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


def prune_units(graph: Graph, x, y, sparsity: float, train, method: str = "filters", scope: str = "layer",
                rounds: int = 1, epochs: int = 10, dtype=None) -> UnitPruneResult:
    """Remove ``sparsity`` of the ``method`` units of ``graph`` in ``rounds`` rounds,
    fine-tuning ``epochs`` in all (``train``: ``algorithms.TrainOptions``); ``x`` in the
    graph's source layout. ``dtype``: the twin's torch dtype (float32 by default)."""
    import torch

    dtype = dtype or torch.float32
    final = schedules.check_sparsity(sparsity)
    if scope not in ("layer", "global"):
        raise OptionError(f"unknown pruning scope {scope!r}; choose layer or global")
    if not isinstance(rounds, int) or rounds < 1:
        raise OptionError(f"rounds must be an integer >= 1, got {rounds!r}")
    original = graph
    first = candidates(graph, channel_units(graph), method)
    if not first:
        kind = "Dense layers before the output" if method == "neurons" else "conv filters outside the model's inputs and outputs"
        raise OptionError(f"--method {method} found no {kind} to prune in model {graph.name!r}")
    sizes = Counter(u.family for u in first)
    removed: Counter = Counter()
    history, accuracy = [], None
    for r, round_epochs in enumerate(_split(epochs, rounds), start=1):
        target = schedules.iterative(r, rounds, final)
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
