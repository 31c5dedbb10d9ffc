"""Design-space search: the cheapest model that keeps its accuracy on a given chip.

``sweep()`` expands a grid (method x schedule x sparsity x bits x seeds) into trials,
runs each (prune, fine-tune, quantize, export, verify, measure) as a Ray task, averages
the seeds, finds the Pareto front of accuracy against the objective and copies the best
model's export folder to ``DIR/best``. Modules: ``spec`` (grid and objectives), ``trial``
(one trial), ``runner`` (Ray, resume), ``pareto`` (points, front), ``outputs`` (files).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from hwprune.data import load_npz
from hwprune.errors import DataError, OptionError, ShapeError
from hwprune.outputs import output_dir
from hwprune.prune.train import as_tensors, check_fits
from hwprune.sweep.outputs import BEST_DIR, SWEEP_JSON, foreign_content, summarize, write_outputs
from hwprune.sweep.pareto import Point, aggregate, best_point, dominates, pareto_front
from hwprune.sweep.runner import check_engine, prepare_folder, run_trials, start_folder
from hwprune.sweep.spec import OBJECTIVES, SweepSpec, Trial, check_objective, parse_list
from hwprune.sweep.trial import Inputs


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_inputs(model: Path, data: Path, test: Optional[Path], seed: int = 0, methods: tuple = (),
                trust_model: bool = False) -> Inputs:
    """The model file's bytes and the data; without ``test`` a stratified 20 % of ``data``
    (fixed seed) is held out. A structured method in ``methods`` that has no layer to
    prune in the model is refused here, before any trial (it would prune nothing)."""
    from hwprune.frontends.torch import load_torch_model  # imports torch (seconds): loaded when this runs
    module = load_torch_model(model, trust_model=trust_model)  # fails here, once, on a bad model file
    x, y = load_npz(data)
    if test is not None:
        x_test, y_test = load_npz(test)
        if x_test.shape[1:] != x.shape[1:]:
            raise ShapeError(f"{test}: x has shape {x_test.shape[1:]} per example, {data} has {x.shape[1:]}")
        x_train, y_train = x, y
    else:
        from sklearn.model_selection import train_test_split

        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)

    for xs, ys, source in ((x_train, y_train, data), (x_test, y_test, test or data)):
        try:  # test labels the model cannot output would only lower the accuracy, silently
            check_fits(module, *as_tensors(xs, ys))
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from None
    _check_methods(module, methods, model)
    return Inputs(Path(model).read_bytes(), Path(model).suffix, x_train, y_train, x_test, y_test, trust_model)


def _check_methods(module, methods, model) -> None:
    from hwprune.prune.criteria import compute_masks  # imports torch: loaded when a sweep checks its model

    for method in ("neurons", "filters"):
        if method in methods and not compute_masks(module, 0.5, method=method, scope="layer"):
            kind = "Linear layers before the output layer" if method == "neurons" else "Conv layers"
            raise OptionError(f"--method {method} found no {kind} to prune in {model}")


def sweep(spec: SweepSpec, inputs: Inputs, out, address: Optional[str] = None, resume: bool = False,
          force: bool = False, workers: Optional[int] = None, progress: bool = True, protect=()) -> dict:
    """Run (or finish) the sweep in ``out``; return the summary written to sweep.json.
    ``protect``: paths ``force`` must never remove (the model and data files).

    A new sweep is written in ``out`` itself, so that ``--resume`` finishes it after a
    kill. ``force`` over an existing sweep builds the new one beside it and swaps it in
    at the end: a kill leaves the old sweep whole (and the next run removes the new one's
    remains), at the price that a killed forced sweep starts over."""
    out = Path(out)
    check_engine(address)
    if not prepare_folder(out, spec, resume, force):
        return _run(spec, inputs, out, address, workers, progress)
    with output_dir(out, force=True, inputs=protect, with_manifest=False, foreign=foreign_content) as work:
        start_folder(work, spec)
        summary = _run(spec, inputs, work, address, workers, progress)
    return summary


def _run(spec: SweepSpec, inputs: Inputs, out: Path, address, workers, progress) -> dict:
    run = run_trials(spec, inputs, out, address, workers, progress)
    summary = summarize(spec, run)
    write_outputs(out, summary)
    return summary


__all__ = [
    "BEST_DIR", "Inputs", "OBJECTIVES", "Point", "SWEEP_JSON", "SweepSpec", "Trial", "aggregate", "best_point",
    "check_objective", "dominates", "load_inputs", "pareto_front", "parse_list", "sha256_file", "sweep",
]
