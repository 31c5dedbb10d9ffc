"""QKeras as an oracle: run a QKeras model file in QKeras itself, in another Python.

QKeras needs TensorFlow (QKeras 0.9, for Keras 2 files) or Keras 3 with ``qkeras-v3`` (for
its Keras 3 ``.keras`` files, which Keras 2 cannot read); neither is one of hwprune's
dependencies. The Pythons that have them are named by options (or environment variables):

- ``--tf-python`` / ``HWPRUNE_TF_PYTHON``: TensorFlow 2.15 with its Keras 2 and QKeras 0.9;
- ``--qkeras3-python`` / ``HWPRUNE_QKERAS3_PYTHON``: Keras 3 with ``qkeras-v3``.

``benchmarks/qkeras_run.py`` runs in that Python and writes every layer's output; this side
starts it and reads them. Without the Python a file needs, ``python_for`` says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from benchmarks.survey_shapes import keras_config_shape
from hwprune.pipeline import load_model
from hwprune.ir.fixed import to_real

RUNNER = Path(__file__).with_name("qkeras_run.py")
TF_ENV, QKERAS3_ENV = "HWPRUNE_TF_PYTHON", "HWPRUNE_QKERAS3_PYTHON"
#: Layer classes only QKeras defines (HGQ's and QONNX's are other frameworks).
QKERAS_CLASSES = ('"QDense"', '"QConv1D"', '"QConv2D"', '"QActivation"', '"QBatchNormalization"',
                  '"QDepthwiseConv2D"', '"QSeparableConv2D"', '"QConv2DBatchnorm"')


class OracleError(Exception):
    """QKeras could not run the file; the message is one line saying why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tf-python", default=os.environ.get(TF_ENV), metavar="PYTHON",
                        help=f"a Python with TensorFlow 2.15 (Keras 2) and QKeras 0.9: runs QKeras's Keras 2 files "
                             f"(default ${TF_ENV})")
    parser.add_argument("--qkeras3-python", default=os.environ.get(QKERAS3_ENV), metavar="PYTHON",
                        help=f"a Python with Keras 3 and qkeras-v3: runs QKeras's Keras 3 .keras files "
                             f"(default ${QKERAS3_ENV})")


def _config_text(path: Path, architecture: Path | None) -> str:
    if architecture is not None:
        return architecture.read_text()
    if path.suffix == ".keras":
        import zipfile
        with zipfile.ZipFile(path) as archive:
            return archive.read("config.json").decode()
    import h5py
    with h5py.File(path, "r") as h5:
        config = h5.attrs.get("model_config", b"")
        return config.decode() if isinstance(config, bytes) else str(config)


def is_qkeras(path: Path, architecture: Path | None) -> bool:
    """Whether a Keras file declares QKeras layers."""
    if path.suffix not in (".h5", ".hdf5", ".keras") and architecture is None:
        return False
    text = _config_text(path, architecture)
    return any(name in text for name in QKERAS_CLASSES)


def python_for(path: Path, tf_python: str | None, qkeras3_python: str | None) -> tuple[str | None, str]:
    """The Python that runs this file in QKeras (for a ``.keras`` file the Keras 3 one if
    given, else TensorFlow's, whose error then says why), or None and why there is none."""
    if path.suffix == ".keras" and qkeras3_python:
        return qkeras3_python, ""
    if tf_python:
        return tf_python, ""
    if path.suffix == ".keras":
        return None, "no oracle here (a Keras 3 .keras file of QKeras: --qkeras3-python runs it)"
    return None, "no oracle here (QKeras needs TensorFlow: --tf-python runs it)"


def run_qkeras(python: str, path: Path, architecture: Path | None, x: np.ndarray, work: Path,
               timeout: float = 600) -> tuple[dict[str, np.ndarray], str]:
    """Every layer's output in QKeras (``qkeras_run.py``'s keys) and the framework's name."""
    inputs, out = work / "qkeras_x.npy", work / "qkeras_y.npz"
    out.unlink(missing_ok=True)
    np.save(inputs, np.asarray(x, dtype=np.float32))
    command = [python, str(RUNNER)]
    command += [str(architecture), "--weights", str(path)] if architecture is not None else [str(path)]
    command += ["--inputs", str(inputs), "--out", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise OracleError(f"{python}: no such Python") from None
    except subprocess.TimeoutExpired:
        raise OracleError(f"QKeras timed out after {timeout:.0f} s") from None
    if done.returncode != 0 or not out.is_file():
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {done.returncode}"
        raise OracleError(reason.removeprefix("qkeras_run: ").replace(f"{path.parent}/", ""))
    framework = json.loads(done.stdout.strip().splitlines()[-1])["framework"]
    with np.load(out) as found:
        return {key: found[key] for key in found.files}, framework


def survey_oracle(python: str):
    """An oracle in the survey's shape: ``(path, architecture, work) -> (input shape, run, name)``,
    ``run`` giving QKeras's model output, one row per input."""
    def make(path: Path, architecture: Path | None, work: Path):
        shape = keras_config_shape(path, architecture)
        if shape is None:
            raise ValueError("the file declares no input shape")

        def run(x: np.ndarray) -> np.ndarray:
            return run_qkeras(python, path, architecture, x, work)[0]["__output__"].reshape(len(x), -1)
        return shape, run, "QKeras"
    return make


def on_export_inputs(python: str, path: Path, architecture: Path | None, export: Path, work: Path) -> str:
    """QKeras on the export's own inputs, rounded to its input type (QKeras reads floats; a
    QKeras model has no input type, the export must choose one): whether the export's
    outputs then equal QKeras's last quantized tensor exactly, as one clause for a row."""
    graph = load_model(export)
    with np.load(export / "vectors.npz") as vectors:
        x = to_real(vectors["x_int"], graph.input_t)
        ours = to_real(vectors["y_int"], graph.output_t).reshape(len(x), -1)
    try:
        found, _ = run_qkeras(python, path, architecture, x, work)
    except OracleError as exc:
        return f"; QKeras on the rounded inputs: {exc}"
    which = "pre-softmax outputs" if "__pre_softmax__" in found else "outputs"
    theirs = found.get("__pre_softmax__", found["__output__"]).reshape(len(x), -1).astype(np.float64)
    equal = int(np.sum(np.all(ours == theirs, axis=1)))
    return (f"; on the same inputs rounded to the export's input type {graph.input_t} (QKeras reads floats), "
            f"QKeras's {which} equal the export's exactly on {equal} of {len(x)}")
