"""Run every available engine on an export and compare each with the integer reference."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from hwprune.backends.c import load_export
from hwprune.errors import HwpruneError, ToolchainError
from hwprune.exportdir import C_DIR, EXPORT_FILE, read_vectors
from hwprune.harness.compare import Comparison, compare
from hwprune.harness.engines import ENGINES, Engine, ReferenceEngine, check_inputs, get_engine
from hwprune.harness.mcu import McuEngine
from hwprune.harness.regenerate import check_code
from hwprune.harness.select import select_engines
from hwprune.ir.graph import Graph
from hwprune.ir.io import load_graph
from hwprune.manifest import check as check_manifest
from hwprune.reference import quantize_input
from hwprune.targets import Target, export_target


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


@dataclass(frozen=True)
class ExportVerification:
    """``hwprune verify`` on an export folder: what ran, on what, and what it found. The
    report (``hwprune.report``) adds its tables and measurements to this."""
    folder: Path
    graph: Graph
    meta: dict  # the folder's export.json
    x_int: np.ndarray
    result: VerifyResult
    compiled: bool  # False: exported with --no-compile and not asked to build now
    target: Target
    target_chosen: bool  # named by the user (at export or now), not the default chip
    mcu: Optional[McuEngine]  # the Cortex-M engine when it was selected (its last_measurement)

    @property
    def bit_exact(self) -> Optional[bool]:
        return self.result.bit_exact if self.compiled else None

    def engines(self) -> dict:
        """Every engine's verdict, the reference first (report.json's ``engines``)."""
        engines = {"reference": {"available": True, "bit_exact": True, "mismatches": 0,
                                 "note": "the numpy integer reference; the definition of the output"}}
        for c in self.result.comparisons:
            engines[c.engine] = {"available": True, "bit_exact": c.bit_exact, "mismatches": c.mismatches,
                                 "note": "" if c.bit_exact else c.report()}
        for name, why in self.result.skipped:
            engines[name] = {"available": False, "bit_exact": None, "mismatches": None, "note": why}
        return engines


def verify_export(export_dir, inputs: Optional[np.ndarray] = None, target: Optional[str] = None,
                  engines: Optional[list] = None, cc: Optional[str] = None, check: bool = True,
                  compile: Optional[bool] = None, inputs_name: str = "inputs",
                  trust_export: bool = False) -> ExportVerification:
    """Run the engines on an export folder and compare each with the reference.

    ``engines``: names of the engines to compare with the reference (default: all but
    ``mcu``, plus ``mcu`` when the export's target is a Cortex-M chosen by the user,
    ``harness.select.select_engines``); ``cc``: the cross compiler of the mcu engine.
    ``check``: refuse a folder without a manifest or whose files differ from it (off only
    while the export itself writes the folder). ``compile``: build and run the C (default:
    as the export did; ``hwprune verify`` always does). ``inputs_name`` names ``inputs`` in errors.
    ``trust_export``: compile the folder's C and hls4ml project as they are, without first
    comparing them with what hwprune regenerates from its graph (``harness.regenerate``)."""
    export_dir = Path(export_dir)
    if check:
        check_manifest(export_dir)
    graph = load_graph(export_dir)
    try:
        meta = json.loads((export_dir / EXPORT_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise HwpruneError(f"{export_dir}: {EXPORT_FILE} is missing or unreadable ({exc}); re-run hwprune export") from None
    if compile is None:
        compile = meta.get("compiled", True)
    if check and compile:  # before anything of the folder is compiled or run
        check_code(export_dir, trust_export)
    stored = None
    if inputs is None:
        vectors = read_vectors(export_dir, graph)
        x_int, stored = vectors["x_int"], vectors["y_int"]
    else:
        x_int = quantize_input(graph, np.asarray(inputs, dtype=np.float64), inputs_name)
    target_spec, chosen = export_target(meta, target)
    selected, mcu = select_engines(target_spec, chosen, engines, cc, default_cc=meta.get("cc"))
    if compile:  # an engine or a cross compiler the user asked for runs, or the command fails
        if engines:
            require_engines(selected, export_dir / C_DIR)
        if cc and mcu is not None and mcu.unavailable_reason():
            raise ToolchainError(f"--cc {cc}: the mcu engine cannot run: {mcu.unavailable_reason()}")
        result = verify(export_dir / C_DIR, x_int, selected, stored_outputs=stored)
        if not result.engines_ran:
            raise ToolchainError("no engine could run the export: " + "; ".join(f"{n}: {why}" for n, why in result.skipped))
    else:
        result = verify(export_dir / C_DIR, x_int, engines=[], stored_outputs=stored)
    return ExportVerification(export_dir, graph, meta, x_int, result, bool(compile), target_spec, chosen, mcu)
