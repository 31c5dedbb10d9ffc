"""Sparsity schedules: pure functions of the training step (or of the pruning round).

- ``constant``: one sparsity throughout (one-shot pruning, then fine-tuning).
- ``polynomial_decay``: Zhu & Gupta 2017, "To prune, or not to prune": sparsity rises
  from ``s_i`` to ``s_f`` as ``s_f + (s_i - s_f) * (1 - (t - t0) / (end - t0)) ** power``,
  fast at first while the network has redundant weights, slowly near the end. The value
  changes only every ``frequency`` steps, so masks are not recomputed on every step.
- ``iterative``: each round removes the same fraction of the weights that remain, so after
  ``k`` of ``rounds`` rounds the density is ``(1 - final) ** (k / rounds)``
  (Han et al. 2015; Frankle & Carbin 2019 remove 20 % per round this way).
"""

from __future__ import annotations

from math import gcd
from typing import Callable

from hwprune.errors import OptionError


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """``sparsity`` as a float in [0, 1), or an OptionError (1 would remove every weight)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= value < 1.0:
        raise OptionError(f"{name} must be in [0, 1), got {sparsity!r}; e.g. 0.9 removes 90 % of the weights")
    return value


def constant(sparsity: float) -> Callable[[int], float]:
    """The schedule that holds ``sparsity`` at every step."""
    sparsity = check_sparsity(sparsity)
    return lambda step: sparsity


def polynomial_decay(
    step: int,
    initial_sparsity: float,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    frequency: int = 1,
    power: float = 3,
) -> float:
    """The target sparsity at ``step``: ``initial`` before ``begin_step``, ``final`` from ``end_step`` on."""
    initial = check_sparsity(initial_sparsity, "initial sparsity")
    final = check_sparsity(final_sparsity, "final sparsity")
    if not isinstance(frequency, int) or frequency < 1:
        raise OptionError(f"pruning frequency must be an integer >= 1 step, got {frequency!r}")
    if end_step < begin_step:
        raise OptionError(f"end step {end_step} comes before begin step {begin_step}")
    if not power > 0:
        raise OptionError(f"power must be > 0, got {power!r}")
    if step < begin_step:
        return initial
    if step >= end_step:
        return final
    # Hold the value between pruning events: the last event at or before ``step``.
    event = begin_step + ((step - begin_step) // frequency) * frequency
    remaining = 1.0 - (event - begin_step) / (end_step - begin_step)
    return final + (initial - final) * remaining ** power


def per_round_fraction(rounds: int, final_sparsity: float) -> float:
    """The fraction of the remaining weights that each of ``rounds`` rounds removes."""
    final = check_sparsity(final_sparsity, "final sparsity")
    if not isinstance(rounds, int) or rounds < 1:
        raise OptionError(f"rounds must be an integer >= 1, got {rounds!r}")
    return 1.0 - (1.0 - final) ** (1.0 / rounds)


def iterative(round: int, rounds: int, final_sparsity: float) -> float:
    """The sparsity after ``round`` of ``rounds`` rounds (0 before the first, ``final`` after the last)."""
    final = check_sparsity(final_sparsity, "final sparsity")
    if not isinstance(rounds, int) or rounds < 1:
        raise OptionError(f"rounds must be an integer >= 1, got {rounds!r}")
    if not 0 <= round <= rounds:
        raise OptionError(f"round must be from 0 to {rounds}, got {round!r}")
    if round == rounds:
        return final  # exact, with no rounding error from the power
    return 1.0 - (1.0 - final) ** (round / rounds)


NM_GROUPS = (4, 8, 16)


def nm_pattern(sparsity: float, given: str | None) -> tuple[int, int]:
    """(N, M) for N:M pruning: from ``given`` ("N:M", the CLI's ``--nm``), else the pattern with M in NM_GROUPS whose
    sparsity 1 - N/M is ``sparsity``; the two must agree."""
    if given is not None:
        parts = given.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or not 0 < int(parts[0]) <= int(parts[1]):
            raise OptionError(f"--nm must read N:M with integers 0 < N <= M, e.g. 2:4; got {given!r}")
        n, m = int(parts[0]), int(parts[1])
        if abs((1 - n / m) - sparsity) > 1e-9:
            raise OptionError(f"--nm {n}:{m} removes {1 - n / m:.2%} of the weights, not --sparsity {sparsity:g}; "
                              f"give --sparsity {1 - n / m:g}")
        return n, m
    for m in NM_GROUPS:
        n = round((1 - sparsity) * m)
        if 0 < n <= m and abs((1 - n / m) - sparsity) < 1e-9:
            return n, m
    reduced = {(n // gcd(n, m), m // gcd(n, m)) for m in NM_GROUPS for n in range(1, m + 1)}
    near = sorted(reduced, key=lambda p: (abs(1 - p[0] / p[1] - sparsity), p[1]))
    options = ", ".join(f"{1 - n / m:g} ({n}:{m})" for n, m in near[:3])
    raise OptionError(f"--method nm keeps N of every M weights; --sparsity {sparsity:g} is no N:M with M in "
                      f"{', '.join(map(str, NM_GROUPS))}: the nearest are {options} (or give --nm N:M)")
