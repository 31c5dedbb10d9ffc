"""Bit-exact comparison of two traces: equality of integers, never a tolerance.

A trace is a list of ``(layer name, ints of shape (vectors, ...))`` in layer order. The
actual trace may hold fewer layers than the expected one (an engine that reports only
its outputs); every layer it holds is compared, and the earliest layer that differs is
where the report points: later layers only inherit the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

Trace = Sequence[tuple[str, np.ndarray]]
Element = Union[int, tuple[int, ...]]


@dataclass(frozen=True)
class Mismatch:
    engine: str
    layer: str
    vector: int
    element: Element
    expected: int
    got: int

    def __str__(self) -> str:
        return (f"{self.engine}: layer {self.layer!r}, vector {self.vector}, element {self.element}: "
                f"expected {self.expected}, got {self.got}")


@dataclass(frozen=True)
class Comparison:
    engine: str
    vectors: int
    layers: tuple[str, ...]  # the layers compared, in order
    mismatches: int  # differing elements over every compared layer
    mismatched_vectors: int  # vectors with any differing element
    first_layer: Optional[str]  # the earliest layer that differs
    first_mismatches: tuple[Mismatch, ...]  # the first few, all in first_layer
    problems: tuple[str, ...] = ()  # missing layers, wrong shapes

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0 and not self.problems

    def report(self) -> str:
        if self.bit_exact:
            return f"{self.engine}: bit-exact on {self.vectors} vectors ({len(self.layers)} layers compared)"
        lines = [f"{self.engine}: NOT bit-exact"]
        lines += [f"  {p}" for p in self.problems]
        if self.mismatches:
            lines.append(
                f"  {self.mismatches} elements differ in {self.mismatched_vectors} of {self.vectors} vectors; "
                f"first differing layer {self.first_layer!r}"
            )
            lines += [f"  {m}" for m in self.first_mismatches]
        return "\n".join(lines)


def _element(flat: int, shape: tuple[int, ...]) -> Element:
    if len(shape) <= 1:
        return int(flat)
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def compare(expected: Trace, actual: Trace, engine: str = "engine", max_examples: int = 5) -> Comparison:
    """Compare ``actual`` against ``expected`` layer by layer with ``np.array_equal``."""
    expected_by_name = {name: np.asarray(v) for name, v in expected}
    order = [name for name, _ in expected]
    actual_by_name = {name: np.asarray(v) for name, v in actual}
    problems = [f"layer {name!r} is not in the reference" for name in actual_by_name if name not in expected_by_name]
    vectors = int(next(iter(expected_by_name.values())).shape[0]) if expected_by_name else 0

    compared: list[str] = []
    total = 0
    bad_vectors = np.zeros(vectors, dtype=bool)
    first_layer: Optional[str] = None
    first: list[Mismatch] = []
    for name in order:
        if name not in actual_by_name:
            continue
        want, got = expected_by_name[name], actual_by_name[name]
        if want.shape != got.shape:
            problems.append(f"layer {name!r}: expected shape {want.shape}, got {got.shape}")
            continue
        compared.append(name)
        if np.array_equal(want, got):
            continue
        differ = (want != got).reshape(want.shape[0], -1)
        total += int(differ.sum())
        bad_vectors |= differ.any(axis=1)
        if first_layer is None:
            first_layer = name
            flat_want, flat_got = want.reshape(want.shape[0], -1), got.reshape(got.shape[0], -1)
            for vector, flat in np.argwhere(differ)[:max_examples]:
                first.append(Mismatch(engine, name, int(vector), _element(int(flat), want.shape[1:]),
                                      int(flat_want[vector, flat]), int(flat_got[vector, flat])))
    if not compared and not problems:
        problems.append("no layer in common with the reference")
    return Comparison(engine, vectors, tuple(compared), total, int(bad_vectors.sum()), first_layer, tuple(first),
                      tuple(problems))
