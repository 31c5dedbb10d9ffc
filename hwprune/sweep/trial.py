"""One trial: prune, fine-tune, quantize, export, verify and measure; nothing shared.

A trial receives the model and data as bytes, works in a temporary folder of its own and
returns its record and its export folder as a tar archive, so it runs the same in this
process, in a local Ray worker or on another machine of a cluster.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import reference
from hwprune.backends.c.options import COptions
from hwprune.pipeline import ExportOptions, remove_dead_neurons, write_export
from hwprune.prune.train import evaluate
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.sweep.spec import OBJECTIVES, SweepSpec, Trial
from hwprune.tempdirs import temp_dir

ALGORITHMS = ("oneshot", "gradual", "iterative")


@dataclass(frozen=True)
class Inputs:
    """What every trial reads: the trained model file and the data, as bytes."""

    model_bytes: bytes
    model_suffix: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    trust_model: bool = False  # unpickle anything in the model file (--trust-model)


def _load_model(inputs: Inputs, work: Path):
    from hwprune.frontends.torch import load_torch_model  # imports torch (seconds): loaded when this runs
    path = work / f"model{inputs.model_suffix}"
    path.write_bytes(inputs.model_bytes)
    return load_torch_model(path, trust_model=inputs.trust_model)


def _prune(spec: SweepSpec, trial: Trial, model, inputs: Inputs):
    from hwprune.prune import algorithms, schedules  # import torch: loaded in the trial's process

    train = dict(lr=spec.lr, batch_size=spec.batch_size, seed=trial.seed)
    common = dict(method=trial.method, scope="layer", epochs=spec.epochs, strip=True, **train)
    if trial.method == "nm":
        n, m = schedules.nm_pattern(trial.sparsity, None)
        common["criteria"] = {"n": n, "m": m}
    x, y = inputs.x_train, inputs.y_train
    if trial.schedule == "oneshot":
        return algorithms.oneshot(model, x, y, trial.sparsity, **common)
    if trial.schedule == "gradual":
        return algorithms.gradual(model, x, y, trial.sparsity, **common)
    return algorithms.iterative(model, x, y, trial.sparsity, rounds=3, **common)


def run_trial(spec: SweepSpec, trial: Trial, inputs: Inputs) -> tuple[dict, bytes]:
    """The trial's record and its export folder (a tar archive, ``export/`` at its root)."""
    from hwprune.frontends.torch import from_torch  # imports torch (seconds): loaded when this runs
    import torch  # a trial runs in its own process (Ray): torch loads there, not where trials are planned

    from hwprune.prune.collapse import worth_reporting

    started = time.perf_counter()
    torch.set_num_threads(1)  # small networks: one thread each, the workers share the cores
    with temp_dir("trial") as work:  # named with the pid: a killed Ray worker's folder is removed by the next run
        model = _load_model(inputs, work)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # collapse warnings are recorded below
            result = _prune(spec, trial, model, inputs)
        float_accuracy = evaluate(result.model, inputs.x_test, inputs.y_test)
        graph = from_torch(result.model, name=spec.name, fallback_input_shape=tuple(inputs.x_train.shape[1:]))
        graph, removed = remove_dead_neurons(graph)
        quantized = calibrate(graph, inputs.x_train, QuantConfig(trial.bits, spec.activation_bits))
        outputs = reference.predict(quantized, inputs.x_test)
        accuracy = float(np.mean(outputs.argmax(axis=1) == inputs.y_test))
        # Formats follow the objective: the fewest bytes for flash, the fewest cycles otherwise.
        optimize = "speed" if spec.objective in ("cycles", "energy") else "size"
        options = ExportOptions(weight_bits=trial.bits, activation_bits=spec.activation_bits,
                                sparsity=trial.sparsity, target=spec.target, task="classification")
        exported = write_export(quantized, work / "export", inputs.x_test, options,
                                source=f"hwprune sweep trial {trial.id}", removed_neurons=removed,
                                backends=(COptions(optimize=optimize),))
        out, report = exported.folder, exported.report
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(out, arcname="export")
    record = {
        **trial.to_dict(),
        "id": trial.id,
        "config": trial.config,
        "sparsity_achieved": result.sparsity,
        "float_accuracy": float(float_accuracy),
        "accuracy": accuracy,
        "bit_exact": bool(report.get("bit_exact")),
        "collapse_warnings": [str(w) for w in worth_reporting(result.warnings, trial.method)],
        "removed_neurons": removed,
        "nonzero_weights": report.get("nonzero_weights"),
        "total_weights": report.get("total_weights"),
        "macs_sparse": report.get("macs_sparse"),
        "weight_bytes": report.get("weight_bytes"),
        "flash_bytes": report.get("flash_bytes"),
        "ram_bytes": report.get("ram_bytes"),
        "objective": OBJECTIVES[spec.objective].value(report),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return record, buffer.getvalue()


UNPACK_PREFIX = ".unpack-"


def unpack_export(archive: bytes, destination: Path) -> Path:
    """Unpack a trial's archive so that its export folder becomes ``destination``."""
    destination = Path(destination)
    with tempfile.TemporaryDirectory(prefix=UNPACK_PREFIX, dir=destination.parent) as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        (Path(tmp) / "export").replace(destination)
    return destination


def objective_value(record: dict) -> Optional[float]:
    return record.get("objective")
