"""Seeds averaged into points, the Pareto front of accuracy against cost, the best point.

A point is one configuration (method, schedule, sparsity, bits) with its accuracy's mean
and sample standard deviation over seeds and the mean of the objective. Point ``a``
dominates ``b`` when it is at least as accurate and at most as costly, and strictly
better in one of the two. The front is every point that no other point dominates; the
best point is the cheapest on the front whose mean accuracy meets the bar (ties: the
more accurate, then the first in grid order).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Optional


@dataclass(frozen=True)
class Point:
    config: str
    method: str
    schedule: str
    sparsity: float
    bits: int
    seeds: int
    accuracy: float  # mean over seeds
    accuracy_sd: float  # sample standard deviation (0 for one seed)
    objective: float  # mean over seeds
    objective_sd: float
    bit_exact: bool  # every seed's export verified bit-exact
    trials: tuple[str, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["trials"] = list(self.trials)
        return d


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(records: list[dict]) -> list[Point]:
    """One point per configuration over its successful trials, in the order first seen."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get("error") is None and r.get("objective") is not None:
            groups.setdefault(r["config"], []).append(r)
    points = []
    for config, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        acc = [r["accuracy"] for r in rs]
        obj = [r["objective"] for r in rs]
        first = rs[0]
        points.append(Point(config, first["method"], first["schedule"], first["sparsity"], first["bits"], len(rs),
                            statistics.fmean(acc), _sd(acc), statistics.fmean(obj), _sd(obj),
                            all(r["bit_exact"] for r in rs), tuple(r["id"] for r in rs)))
    return points


def dominates(a: Point, b: Point) -> bool:
    return (a.accuracy >= b.accuracy and a.objective <= b.objective
            and (a.accuracy > b.accuracy or a.objective < b.objective))


def pareto_front(points: list[Point]) -> list[Point]:
    """The non-dominated points, cheapest first."""
    front = [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
    return sorted(front, key=lambda p: (p.objective, -p.accuracy))


def best_point(points: list[Point], min_accuracy: float) -> Optional[Point]:
    """The cheapest front point that meets ``min_accuracy``; ``None`` when none does.

    The cheapest point meeting the bar is always on the front: a point dominating it
    would be at least as accurate (so meet the bar too) and no more costly.
    """
    meeting = [p for p in pareto_front(points) if p.accuracy >= min_accuracy]
    return min(meeting, key=lambda p: (p.objective, -p.accuracy)) if meeting else None
