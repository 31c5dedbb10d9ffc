"""Ranges of the numeric flags: argparse types that refuse a value outside its range.

Every numeric flag of every command takes one of these, so ``--epochs 100000000000000000000``,
``--lr inf`` or ``--seed -1`` is one line and exit 2 before any work (argparse reports
the flag: ``--epochs must be an integer from 0 to 100000, got ...``), never a run that
cannot end or a traceback.
The bounds are generous: far beyond any sensible run, well inside what the code and the
libraries it calls can take.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

MAX_EPOCHS = 100_000
MAX_STEPS = 1_000_000_000  # --warmup-steps, --rewind-iteration
MAX_ROUNDS = 1_000
MAX_BATCH = 1 << 20
MAX_THREADS = 1_024
MAX_SEED = 2**32 - 1  # what numpy's and scikit-learn's seeds take
MAX_REUSE = 65_536  # hls4ml's reuse factor divides a layer's multiplications
MAX_LR = 10.0  # Adam's and SGD's rates beyond this only diverge
MAX_SEEDS = 1_000  # sweep: seeds per configuration


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (both included)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, got {text}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def float_range(low: float, high: float, low_open: bool = False, high_open: bool = False,
                what: str = "a number") -> Callable[[str], float]:
    """An argparse type: a finite number in the interval from ``low`` to ``high`` (an end
    is left out when ``low_open`` / ``high_open``); ``what`` names it in the message."""
    interval = f"{what + ' ' if what else ''}in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {interval}, got {text!r}") from None
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"must be {interval}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


BITS = int_range(2, 16)
FRACTION = float_range(0.0, 1.0, what="a fraction")  # [0, 1]
SPARSITY = float_range(0.0, 1.0, high_open=True, what="")  # [0, 1)
REUSE_FACTOR = int_range(1, MAX_REUSE)
SEED = int_range(0, MAX_SEED)
