"""The survey: public model files nobody on the project wrote, exported as a new user would.

For every model file of the folder(s) (gathered by ``benchmarks/survey_files.py``, whose
``sources.json`` says where each came from), in order:

1. the source framework runs it on 200 seeded random inputs (Keras 3 with
   ``KERAS_BACKEND=torch``, onnxruntime, torch; QKeras in the Python ``--tf-python`` or
   ``--qkeras3-python`` names, ``benchmarks/qkeras_oracle.py``: without it a QKeras file is
   exported but not checked; a QONNX file qonnx's own execution,
   ``benchmarks/qonnx_oracle.py``); an image model (an input of more than ``LARGE_INPUT``
   values) on ``LARGE_SAMPLES`` of them, which the integer reference holds in memory with
   every layer's output;
2. ``hwprune export`` with 16-bit weights and activations (a quantized file: its own types) for the host, calibrated on those
   200 inputs, which are also its test vectors: exit 0 means every engine equals the integer
   reference bit for bit;
3. ``hwprune export --target stm32l4r5`` (Cortex-M4F) at the default 8 bits on the first
   ``--mcu-vectors`` inputs: the host C and the firmware in the emulator, both bit for bit;
4. for a classifier (the export's task, or 2 to 100 outputs), the argmax of the 16-bit export's integer outputs
   must equal the source framework's on all 200 inputs; a QONNX file (fully quantized, no
   calibration) must equal qonnx's outputs exactly, value for value.

A file passes when both exports exit 0 and, for a classifier, every argmax agrees. A refused
file gets hwprune's one-line reason. Prints a table and writes it as Markdown (``--md``).

    python -m benchmarks.survey /path/to/survey-models --md survey.md [--only NAME ...] \
        [--tf-python /path/to/tf/bin/python] [--qkeras3-python /path/to/keras3/bin/python]

Slow (minutes per large model, the emulator dominating); run it with ``nice``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.hgq_oracle import hgq_oracle
from benchmarks.keras_twin import keras_twin
from benchmarks.qkeras_oracle import add_arguments, is_qkeras, on_export_inputs, python_for, survey_oracle
from benchmarks.survey_cut import CUT_AT, cut_model
from benchmarks.survey_shapes import declared_input_shape
from benchmarks.qonnx_oracle import exact_to_qonnx, is_qonnx, qonnx_runner

os.environ.setdefault("KERAS_BACKEND", "torch")

SAMPLES = 200
LARGE_INPUT = 1 << 14
LARGE_SAMPLES = 4
# A model with 2 to this many outputs is taken for a classifier (its argmax is checked) even
# without a final Softmax; more outputs (an autoencoder's 640) are a regression.
MAX_CLASSES = 100
MCU_TARGET = "stm32l4r5"
# Files whose layers the QKeras/HGQ/QONNX work (another change) maps: listed with that owner.
QUANTIZED_OWNER = "qmodels"


def _onnx_producer(path: Path) -> str:
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default="?")
    return f"{model.producer_name or '?'} {model.producer_version} (opset {opset})".strip()


def _keras_version(path: Path) -> str:
    import h5py
    if path.suffix == ".keras":
        import zipfile
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json"))
        return f"Keras {meta.get('keras_version', '?')} .keras"
    with h5py.File(path, "r") as h5:
        version = h5.attrs.get("keras_version", b"?")
        version = version.decode() if isinstance(version, bytes) else str(version)
        whole = "model_config" in h5.attrs
    return f"Keras {version} {'model.save' if whole else 'save_weights'}"


def exporter_of(path: Path) -> str:
    if path.suffix == ".onnx":
        return _onnx_producer(path)
    if path.suffix in (".h5", ".hdf5", ".keras"):
        return _keras_version(path)
    if path.suffix in (".pt", ".pth"):
        return "torch.save (pickle)"
    return "?"


def quantized_layers(path: Path, architecture: Path | None) -> bool:
    """Whether the file declares QKeras/HGQ layers or QONNX quantizers (another change's work)."""
    if path.suffix == ".onnx":
        import onnx
        model = onnx.load(str(path), load_external_data=False)
        return any(n.op_type in ("Quant", "BipolarQuant", "Trunc") for n in model.graph.node)
    text = ""
    if architecture is not None:
        text = architecture.read_text()
    elif path.suffix == ".keras":
        import zipfile
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json").decode()
    elif path.suffix in (".h5", ".hdf5"):
        import h5py
        with h5py.File(path, "r") as h5:
            config = h5.attrs.get("model_config", b"")
            text = config.decode() if isinstance(config, bytes) else str(config)
    return any(tag in text for tag in ('"QDense"', '"QConv', '"QActivation"', '"FixedPointQuantizer"', '"HQuantize"',
                                       '"HDense"', '"QBatchNorm'))


# ---- the source frameworks -------------------------------------------------------------------

def _keras2_full_model(architecture: Path, weights: Path, out: Path) -> Path:
    """What Keras 2's ``model.save`` writes (the JSON as ``model_config``, the weights under
    ``model_weights``): Keras 3 reads Keras 2 models only in that form."""
    import h5py
    with h5py.File(out, "w") as f, h5py.File(weights, "r") as source:
        f.attrs["model_config"] = architecture.read_text().encode()
        f.attrs["keras_version"] = source.attrs.get("keras_version", b"2.0.0")
        f.attrs["backend"] = b"tensorflow"
        group = f.create_group("model_weights")
        for key, value in source.attrs.items():
            group.attrs[key] = value
        for key in source:
            source.copy(source[key], group, key)
    return out


def _keras_model(path: Path, architecture: Path | None, work: Path):
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        """Keras 2.4+ writes ``groups`` (always 1) into DepthwiseConv2D's config; Keras 3 refuses it."""

        def __init__(self, *args, groups=1, **kwargs):
            super().__init__(*args, **kwargs)

    custom = {"DepthwiseConv2D": DepthwiseConv2D}
    if architecture is None:
        return keras.models.load_model(str(path), compile=False, custom_objects=custom)
    try:
        return keras.models.load_model(str(_keras2_full_model(architecture, path, work / "keras2_full.h5")),
                                       compile=False, custom_objects=custom)
    except (TypeError, ValueError):  # a Keras 2.0 config Keras 3 cannot read: rebuilt layer by layer
        return keras_twin(architecture, path)


def _keras_oracle(path, architecture, work):
    model = _keras_model(path, architecture, work)
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise ValueError(f"input shape {shape} has an unknown size")
    return shape, lambda x: np.asarray(model.predict(x, verbose=0, batch_size=50)).reshape(len(x), -1), "Keras 3"


def _onnx_oracle(path, _architecture, work):
    import onnx
    import onnxruntime
    if is_qonnx(path):  # Quant, BipolarQuant, channels-last ops: onnxruntime has none of them
        shape, run = qonnx_runner(path)
        return shape, run, "qonnx"
    if path.name in CUT_AT:
        path = cut_model(path, CUT_AT[path.name], work)
    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    dims = [d.dim_value if d.dim_value > 0 else None for d in inputs[0].type.tensor_type.shape.dim]
    batch = dims[0] if dims and dims[0] else None  # opset-9 files fix the batch size
    shape = tuple(dims[1:])
    if None in shape:
        raise ValueError(f"input shape {shape} has an unknown size")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session.run(None, {i.name: np.zeros([d.dim_value or 1 for d in i.type.tensor_type.shape.dim], np.float32)
                           for i in inputs})
    except Exception:  # onnxruntime dropped old opsets (Gemm-6): ONNX's own reference evaluator runs them
        from onnx.reference import ReferenceEvaluator
        session, framework = ReferenceEvaluator(onnx.load(str(path))), "onnx.reference"
    else:
        framework = "onnxruntime"
    name = inputs[0].name
    extra = {i.name: np.zeros([d.dim_value or 1 for d in i.type.tensor_type.shape.dim], np.float32)
             for i in inputs[1:]}

    def run(x):
        x = x.astype(np.float32)
        if batch is None:
            return session.run(None, {name: x, **extra})[0].reshape(len(x), -1)
        outputs = []
        for start in range(0, len(x), batch):
            chunk = x[start:start + batch]
            padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), np.float32)])
            outputs.append(session.run(None, {name: padded, **extra})[0].reshape(batch, -1)[:len(chunk)])
        return np.concatenate(outputs)
    return shape, run, framework


def _torch_oracle(path, _architecture, _work):
    import torch
    model = torch.load(str(path), map_location="cpu", weights_only=False)  # a public file read knowingly
    model.eval()
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)))
    if not isinstance(first, torch.nn.Linear):
        raise ValueError("the input shape of a conv model is not in the file")
    shape = (first.in_features,)

    def run(x):
        with torch.no_grad():
            return model(torch.from_numpy(x.astype(np.float32))).numpy().reshape(len(x), -1)
    return shape, run, "torch"


ORACLES = {".onnx": ("onnxruntime", _onnx_oracle), ".pt": ("torch", _torch_oracle),
           ".h5": ("Keras 3 (torch)", _keras_oracle), ".hdf5": ("Keras 3 (torch)", _keras_oracle),
           ".keras": ("Keras 3 (torch)", _keras_oracle)}


# ---- hwprune ---------------------------------------------------------------------------------

def _hwprune_export(model: Path, architecture, calibration: Path, out: Path, extra: list[str], timeout: float):
    if architecture is not None:
        command = [sys.executable, "-m", "hwprune", "export", str(architecture), "--weights", str(model)]
    else:
        command = [sys.executable, "-m", "hwprune", "export", str(model)]
    if model.suffix == ".pt":
        command.append("--trust-model")  # a legacy whole-module pickle: the flag is the only way in
    command += ["--calibration", str(calibration), "--out", str(out), *extra]
    command += ["--output", CUT_AT[model.name]] if model.name in CUT_AT else []
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("warning")]
    reason = lines[-1] if lines else ""
    reason = reason.removeprefix("hwprune export: error: ").replace(f"{model.parent}/", "")
    return done.returncode, reason.split("; supported ")[0]


def source_oracle(path: Path, architecture: Path | None, tf_python: str | None = None,
                  qkeras3_python: str | None = None):
    """(name, make_oracle or None, why there is none): what runs the file. HGQ and QKeras run
    in a Python of their own (TensorFlow is no dependency of hwprune): without one, nothing
    runs a QKeras file."""
    name, make = hgq_oracle(path) or ORACLES[path.suffix]
    if not is_qkeras(path, architecture):
        return name, make, ""
    python, why = python_for(path, tf_python, qkeras3_python)
    return "QKeras", (survey_oracle(python) if python else None), why


def survey_one(path: Path, info: dict, folder: Path, work: Path, mcu_vectors: int, timeout: float,
               tf_python: str | None = None, qkeras3_python: str | None = None) -> dict:
    architecture = folder / info["architecture"] if info.get("architecture") else None
    row = {"file": path.name if architecture is None else f"{architecture.name} + {path.name}",
           "source": info.get("repo", "?"), "exporter": exporter_of(path),
           "owner": QUANTIZED_OWNER if quantized_layers(path, architecture) else "",
           "outcome": "", "reason": "", "host": "", "m4": "", "argmax": ""}
    oracle_name, make_oracle, no_oracle = source_oracle(path, architecture, tf_python, qkeras3_python)
    rng = np.random.default_rng(0)
    started = time.time()
    try:
        if make_oracle is None:
            raise LookupError(no_oracle)
        shape, run, oracle_name = make_oracle(path, architecture, work)
        samples = SAMPLES if int(np.prod(shape)) <= LARGE_INPUT else LARGE_SAMPLES
        x = rng.standard_normal((samples, *shape)).astype(np.float32)
        y_source = run(x)
        if len(y_source) != samples:
            raise ValueError(f"its output has {len(y_source)} rows for {samples} inputs (not one per example)")
    except Exception as exc:  # the survey reports any framework failure as a row, not a crash
        x, y_source = None, None
        row["argmax"] = f"{oracle_name} cannot run it: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        if oracle_name == "QKeras":
            row["argmax"] = no_oracle or f"QKeras cannot run it: {exc}"
        elif row["owner"] and oracle_name != "qonnx":  # frameworks not installable without TensorFlow
            row["argmax"] = "no oracle here (QKeras and HGQ need TensorFlow)"
    if x is None:  # no oracle: hwprune still runs, on inputs of the shape the file declares
        shape = declared_input_shape(path, architecture)
        if shape is None:
            row["outcome"], row["reason"] = "not checked", row["argmax"]
            return row
        x, y_source = rng.standard_normal((SAMPLES, *shape)).astype(np.float32), None
    calibration = work / "x.npy"
    np.save(calibration, x)
    np.save(work / "x_mcu.npy", x[:mcu_vectors])
    host_dir, mcu_dir = work / "host16", work / "m4"
    # A quantized file (QKeras, HGQ, QONNX) keeps the types it declares: no widths to give.
    widths = [] if row["owner"] else ["--weight-bits", "16", "--activation-bits", "16"]
    rc, reason = _hwprune_export(path, architecture, calibration, host_dir, widths, timeout)
    row["host"] = {0: "bit-exact", 1: "not bit-exact", 2: "refused", None: "timeout"}.get(rc, f"exit {rc}")
    if rc != 0:
        row["outcome"], row["reason"] = row["host"], reason
        return row
    export = json.loads((host_dir / "export.json").read_text())
    task = (export.get("fidelity") or {}).get("task")
    if y_source is None:
        rc, reason_mcu = _hwprune_export(path, architecture, work / "x_mcu.npy", mcu_dir, ["--target", MCU_TARGET],
                                         timeout)
        row["m4"] = {0: "bit-exact", 1: "not bit-exact", 2: "refused", None: "timeout"}.get(rc, f"exit {rc}")
        row["outcome"] = "exported, not checked" if rc == 0 else f"M4 {row['m4']}"
        row["reason"] = row["argmax"] if rc == 0 else reason_mcu
        return row
    if task != "classification" and 2 <= y_source.shape[1] <= MAX_CLASSES:
        task = "classification"  # class scores without a final Softmax (mnist-8's logits): argmax still counts
    samples = len(x)
    with np.load(host_dir / "vectors.npz") as vectors:
        y_int = vectors["y_int"].reshape(samples, -1)
    exact = exact_to_qonnx(path, y_int, y_source) if oracle_name == "qonnx" else None
    if task == "classification":
        agree = int(np.sum(np.argmax(y_int, axis=1) == np.argmax(y_source, axis=1)))
        row["argmax"] = f"{agree}/{samples}"
    else:
        row["argmax"] = f"({task})" if task else ""  # a QONNX file has no float model to compare a task's terms
    if exact is not None:
        row["argmax"] = "; ".join(part for part in (row["argmax"], exact) if part)
    rc, reason_mcu = _hwprune_export(path, architecture, work / "x_mcu.npy", mcu_dir,
                                     ["--target", MCU_TARGET], timeout)
    row["m4"] = {0: "bit-exact", 1: "not bit-exact", 2: "refused", None: "timeout"}.get(rc, f"exit {rc}")
    if rc != 0:
        row["outcome"], row["reason"] = f"M4 {row['m4']}", reason_mcu
    elif exact is not None and not exact.startswith("equal"):
        row["outcome"], row["reason"] = "differs from qonnx", exact
    elif task == "classification" and agree != samples:
        row["outcome"], row["reason"] = "argmax differs", f"16-bit argmax equals {oracle_name}'s on {agree} of {samples}"
        if oracle_name == "QKeras":
            python = python_for(path, tf_python, qkeras3_python)[0]
            row["reason"] += on_export_inputs(python, path, architecture, host_dir, work)
    else:
        row["outcome"] = "pass"
    row["seconds"] = round(time.time() - started, 1)
    return row


def model_files(folders: list[Path]) -> list[tuple[Path, dict, Path]]:
    found = []
    for folder in folders:
        sources = json.loads((folder / "sources.json").read_text())
        for name in sorted(sources, key=str.lower):
            found.append((folder / name, sources[name], folder))
    return found


def markdown(rows: list[dict], command: str) -> str:
    passed = sum(r["outcome"] == "pass" for r in rows)
    lines = [f"Survey: {passed} of {len(rows)} files pass (`{command}`).", "",
             "| # | file | source | exporter | host 16-bit | M4 8-bit | argmax vs source | outcome | reason |",
             "|---:|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        owner = r["owner"] or (QUANTIZED_OWNER if "BatchNormalization" in r["reason"] else "")
        owner = f" ({owner})" if owner and r["outcome"] != "pass" else ""
        reason = r["reason"].replace("|", "\\|")
        lines.append(f"| {i} | {r['file']} | {r['source']} | {r['exporter']} | {r['host']} | {r['m4']} | "
                     f"{r['argmax']} | {r['outcome']}{owner} | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders written by benchmarks/survey_files.py")
    p.add_argument("--md", type=Path, help="write the table as Markdown to this file")
    p.add_argument("--json", type=Path, help="write the rows as JSON to this file")
    p.add_argument("--only", nargs="*", help="survey only files whose name contains one of these")
    p.add_argument("--mcu-vectors", type=int, default=10, help="inputs run in the Cortex-M4 emulator (default 10)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per export")
    p.add_argument("--update", type=Path, metavar="ROWS.json",
                   help="rows of an earlier run (--json): the files surveyed now replace theirs, the others are kept "
                        "(to re-run a few files after a change)")
    add_arguments(p)
    args = p.parse_args(argv)
    rows = []
    for path, info, folder in model_files(args.folders):
        if args.only and not any(part in path.name or part in info.get("architecture", "") for part in args.only):
            continue
        with tempfile.TemporaryDirectory(prefix="hwprune-survey-") as work:
            row = survey_one(path, info, folder, Path(work), args.mcu_vectors, args.timeout,
                             args.tf_python, args.qkeras3_python)
        rows.append(row)
        print(f"{row['file']:<60} {row['outcome']:<16} {row['argmax']:<10} {row['reason'][:150]}", flush=True)
    if args.update is not None:
        fresh = {row["file"]: row for row in rows}
        earlier = json.loads(args.update.read_text())
        rows = [fresh.pop(row["file"], row) for row in earlier] + list(fresh.values())
    command = "python -m benchmarks.survey " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(rows, command)
    print(table)
    if args.md:
        args.md.write_text(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
