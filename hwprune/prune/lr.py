"""Learning-rate schedules: the multiplier of the base rate as a pure function of the step.

Every schedule is ``factor(step, total_steps)`` with ``step`` counted from 0 over a run
of ``total_steps`` optimizer updates, so a run resumed at step ``k`` (LR rewinding,
Renda et al. 2020; weight rewinding, Frankle et al. 2020) gets exactly the rates the
original run had from step ``k`` on: nothing depends on how many steps were taken
before in this process.

- ``constant``: 1 throughout.
- ``step``: divided by 10 at half and at three quarters of the run (the ResNet recipe
  that Renda et al. rewind).
- ``cosine``: half a cosine from 1 down to 0 (Loshchilov & Hutter 2017, no restarts).
- ``onecycle``: Smith & Topin 2019 as ``torch.optim.lr_scheduler.OneCycleLR`` computes
  it with its defaults: from 1/25 up to 1 over the first 30 % of the steps, then down
  to 1/(25 * 10^4), both halves cosine-shaped.

``warmup`` (steps) multiplies any schedule by ``(step + 1) / warmup`` for the first
``warmup`` steps (Goyal et al. 2017), so the first update is already non-zero.
"""

from __future__ import annotations

import math
from typing import Callable

from hwprune.errors import OptionError

LR_SCHEDULES = ("constant", "step", "cosine", "onecycle")

# torch.optim.lr_scheduler.OneCycleLR defaults.
ONECYCLE_PEAK_AT = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def constant(step: int, total_steps: int) -> float:
    return 1.0


def step_decay(step: int, total_steps: int) -> float:
    return 0.1 ** ((step >= total_steps // 2) + (step >= (3 * total_steps) // 4))


def cosine(step: int, total_steps: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def _anneal(start: float, end: float, fraction: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1.0)


def onecycle(step: int, total_steps: int) -> float:
    low = 1.0 / ONECYCLE_DIV
    final = low / ONECYCLE_FINAL_DIV
    peak_step = float(ONECYCLE_PEAK_AT * total_steps) - 1.0
    last_step = float(total_steps) - 1.0
    if peak_step <= 0 or last_step <= peak_step:
        return cosine(step, total_steps)  # too few steps for two phases
    if step <= peak_step:
        return _anneal(low, 1.0, step / peak_step)
    return _anneal(1.0, final, min(step - peak_step, last_step - peak_step) / (last_step - peak_step))


NAMED: dict[str, Callable[[int, int], float]] = {
    "constant": constant, "step": step_decay, "cosine": cosine, "onecycle": onecycle,
}


def check_schedule(schedule, warmup: int = 0):
    """``schedule`` (a name, a function ``(step, total) -> factor`` or None) and ``warmup``,
    or an OptionError naming what is wrong."""
    if schedule is not None and not callable(schedule) and schedule not in NAMED:
        raise OptionError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)} "
                          "or a function (step, total_steps) -> factor")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise OptionError(f"warm-up must be an integer number of steps >= 0, got {warmup!r}")
    return schedule


def factor(schedule, step: int, total_steps: int, warmup: int = 0) -> float:
    """The learning-rate multiplier at ``step`` of a run of ``total_steps`` steps."""
    check_schedule(schedule, warmup)
    if schedule is None:
        value = 1.0
    elif callable(schedule):
        value = float(schedule(step, total_steps))
    else:
        value = NAMED[schedule](step, total_steps)
    if step < warmup:
        value *= (step + 1) / warmup
    return value


def rates(lr: float, schedule, total_steps: int, warmup: int = 0, start_step: int = 0) -> list[float]:
    """The learning rate of every step from ``start_step`` to the end of the run."""
    return [lr * factor(schedule, step, total_steps, warmup) for step in range(start_step, total_steps)]
