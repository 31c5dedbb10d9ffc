"""Run every available engine on an export and compare each with the integer reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from hwprune.harness.compare import Comparison, compare
from hwprune.harness.engines import ENGINES, Engine, ReferenceEngine, check_inputs, get_engine
from hwprune.backends.c import load_export
from hwprune.errors import ToolchainError


@dataclass(frozen=True)
class VerifyResult:
    vectors: int
    comparisons: tuple[Comparison, ...]
    skipped: tuple[tuple[str, str], ...]  # (engine, why it could not run here)

    @property
    def bit_exact(self) -> bool:
        """Every engine that ran equals the reference, and at least one ran."""
        return self.engines_ran and all(c.bit_exact for c in self.comparisons)

    @property
    def engines_ran(self) -> bool:
        """At least one engine besides the reference ran."""
        return any(not c.engine.startswith(f"reference/") for c in self.comparisons)

    def comparison(self, engine: str) -> Comparison:
        for c in self.comparisons:
            if c.engine == engine:
                return c
        raise KeyError(f"engine {engine!r} did not run; ran {[c.engine for c in self.comparisons]}")

    def report(self) -> str:
        lines = [c.report() for c in self.comparisons]
        lines += [f"{name}: skipped ({why})" for name, why in self.skipped]
        if not self.engines_ran:
            lines.append("no engine ran: nothing was verified")
        return "\n".join(lines)


STORED = "stored y_int"


def require_engines(engines: Sequence[Union[str, Engine]], export_dir) -> None:
    """ToolchainError naming the first engine of ``engines`` (the ones a user asked for by
    name) that cannot run on ``export_dir`` here: an engine asked for is never skipped."""
    for engine in map(get_engine, engines):
        reason = engine.unavailable_reason()
        if not reason and hasattr(engine, "skip_reason"):
            reason = engine.skip_reason(export_dir)
        if reason:
            raise ToolchainError(f"--engine {engine.name} cannot run: {reason}")


def verify(export_dir, x_int, engines: Optional[Sequence[Union[str, Engine]]] = None,
           stored_outputs=None) -> VerifyResult:
    """Compare every engine (default: all registered but the reference and those that need
    more than an export, such as mcu and its target) with the reference, layer by layer
    where the engine traces, on integer inputs ``x_int``.

    ``stored_outputs``: the reference outputs saved at export time (``y_int``); the
    reference of today and every engine are compared with them too, so a graph changed
    after export cannot pass."""
    export_dir = Path(export_dir)
    graph = load_export(export_dir)
    x = check_inputs(graph, x_int)
    expected = ReferenceEngine().run(graph, x)
    if engines is None:
        engines = [n for n, factory in ENGINES.items() if n != "reference" and getattr(factory, "by_default", True)]
    chosen = [get_engine(e) for e in engines]
    comparisons, skipped = [], []
    stored = None
    if stored_outputs is not None:
        stored = ((graph.layers[-1].name, np.asarray(stored_outputs, dtype=np.int64)),)
        comparisons.append(compare(stored, expected.trace[-1:], f"reference/{STORED}"))
    for engine in chosen:
        reason = engine.unavailable_reason()
        if not reason and hasattr(engine, "skip_reason"):  # an engine that needs more than C sources
            reason = engine.skip_reason(export_dir)
        if reason:
            skipped.append((engine.name, reason))
            continue
        run = engine.run(export_dir, x)
        actual = run.trace or ((graph.layers[-1].name, run.outputs),)
        comparisons.append(compare(expected.trace, actual, engine.name))
        if stored is not None:
            comparisons.append(compare(stored, ((graph.layers[-1].name, run.outputs),), f"{engine.name}/{STORED}"))
    return VerifyResult(int(x.shape[0]), tuple(comparisons), tuple(skipped))
