"""QKeras files exported with no calibration against QKeras's own execution, value for value.

For every QKeras file of the survey folder(s) (``benchmarks/survey_files.py``):

1. ``hwprune export MODEL --out DIR`` with no calibration and no widths: every quantized
   layer carries the type its QKeras quantizer declares (``frontends/keras_qkeras.py``);
   exit 0 means the C equals the integer reference bit for bit on the export's test vectors;
2. QKeras runs the same inputs (``benchmarks/qkeras_oracle.py``: QKeras 0.9 on TensorFlow's
   Keras 2, or qkeras-v3 on Keras 3 for a ``.keras`` file) and writes every layer's output;
3. the inputs: the export's own test vectors (256, spread over the whole input type, so
   that the saturating ends and the quantizers' ties occur) and 200 standard normal inputs
   put on the input type's grid (QKeras reads floats: on the grid, both read the same
   numbers);
4. every layer's integer output in the reference (the graph as read), scaled by its type,
   must equal QKeras's float output of the same layer exactly (``np.array_equal``), and the
   exported model's outputs (scaled back) must equal QKeras's last quantized tensor: the
   input of the final Softmax, which QKeras computes in float and hwprune does not compute.

QKeras's sums are float32: they are exact, and the equality can hold, while every partial
sum fits float32's 24-bit significand; the widest accumulator is printed.

    python -m benchmarks.qkeras_exact /tmp/survey-models --tf-python /work/tfvenv/bin/python \\
        --qkeras3-python /work/qk3venv/bin/python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.qkeras_oracle import OracleError, add_arguments, is_qkeras, python_for, run_qkeras
from benchmarks.survey import model_files
from hwprune.pipeline import load_model
from hwprune.ir.fixed import to_real
from hwprune.reference import core

SAMPLES = 200
#: What the Keras frontend appends to a layer's name for the activation it carries.
ACTIVATION_SUFFIXES = ("relu", "quant", "relu6", "softmax", "sigmoid", "tanh")


def _counterpart(graph, keras_name: str):
    """The IR layer whose output is the Keras layer's output (its activation's, if it has one)."""
    found = [layer for layer in graph.layers if layer.name == keras_name
             or layer.name in (f"{keras_name}_{suffix}" for suffix in ACTIVATION_SUFFIXES)]
    return found[-1] if found else None


def compare_layers(graph, x_int: np.ndarray, qkeras: dict[str, np.ndarray]) -> tuple[int, int, str]:
    """(layers equal, layers compared, the first difference) over the Keras layers that have
    an IR counterpart with a type (a final Softmax has none: hwprune does not compute it)."""
    trace = dict(core.run(graph, x_int, trace=True))
    equal = compared = 0
    first = ""
    for keras_name, theirs in qkeras.items():
        layer = None if keras_name.startswith("__") else _counterpart(graph, keras_name)
        if layer is None or layer.kind == "softmax":
            continue
        ours = to_real(trace[layer.name], graph.type_of(layer.name)).reshape(theirs.shape)
        compared += 1
        if np.array_equal(ours, theirs.astype(np.float64)):
            equal += 1
        elif not first:
            index = tuple(int(i) for i in np.argwhere(ours != theirs)[0])
            first = (f"{keras_name}: {int(np.sum(ours != theirs))} of {ours.size} differ, first at {index}: "
                     f"hwprune {float(ours[index])!r}, QKeras {float(theirs[index])!r}")
    return equal, compared, first


def check_one(path: Path, architecture: Path | None, python: str, work: Path) -> dict:
    out = work / "export"
    command = [sys.executable, "-m", "hwprune", "export", str(architecture or path), "--out", str(out)]
    command += ["--weights", str(path)] if architecture is not None else []
    done = subprocess.run(command, capture_output=True, text=True)
    row = {"export": "bit-exact" if done.returncode == 0 else f"exit {done.returncode}"}
    if done.returncode != 0:
        row["first"] = (done.stderr.strip().splitlines() or [""])[-1]
        return row
    source = load_model(architecture or path, weights=path if architecture is not None else None)
    exported = load_model(out)
    with np.load(out / "vectors.npz") as vectors:
        x_spread, y_stored = vectors["x"], vectors["y_int"]
    normal = np.random.default_rng(0).standard_normal((SAMPLES, *source.source_input_shape))
    x = np.concatenate([x_spread, to_real(core.quantize_input(source, normal), source.input_t)])
    qkeras, row["qkeras"] = run_qkeras(python, path, architecture, x, work)
    x_int = core.quantize_input(source, x)
    if not np.array_equal(to_real(x_int, source.input_t), x):
        raise AssertionError("the inputs are not on the input type's grid")
    row["inputs"] = f"{len(x_spread)} spread + {SAMPLES} normal"
    row["layers_equal"], row["layers"], row["first"] = compare_layers(source, x_int, qkeras)
    y_int = core.run(exported, core.quantize_input(exported, x))
    if not np.array_equal(y_int[:len(x_spread)].reshape(y_stored.shape), y_stored):
        raise AssertionError("the reference does not reproduce the export's stored outputs")
    ours = to_real(y_int, exported.output_t).reshape(len(x), -1)
    theirs = qkeras.get("__pre_softmax__", qkeras["__output__"]).reshape(len(x), -1).astype(np.float64)
    row["outputs_equal"] = f"{int(np.sum(np.all(ours == theirs, axis=1)))}/{len(x)}"
    row["accumulator_bits"] = max((t.width for layer in source.layers for key, t in layer.types().items()
                                   if key == "accum_t"), default=0)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="folders written by benchmarks/survey_files.py")
    p.add_argument("--only", nargs="*", help="only files whose name contains one of these")
    add_arguments(p)
    args = p.parse_args(argv)
    rows = []
    for path, info, folder in model_files(args.folders):
        architecture = folder / info["architecture"] if info.get("architecture") else None
        if args.only and not any(part in path.name for part in args.only):
            continue
        if not is_qkeras(path, architecture):
            continue
        name = path.name if architecture is None else f"{architecture.name} + {path.name}"
        python, why = python_for(path, args.tf_python, args.qkeras3_python)
        if python is None:
            rows.append({"file": name, "first": why})
            continue
        with tempfile.TemporaryDirectory(prefix="hwprune-qkeras-") as work:
            try:
                row = check_one(path, architecture, python, Path(work))
            except OracleError as exc:
                row = {"first": f"QKeras cannot run it: {exc}"}
        rows.append({"file": name, **row})
        print(rows[-1], flush=True)
    command = "python -m benchmarks.qkeras_exact " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\n`{command}`\n")
    print("| file | QKeras | export (C vs reference) | inputs | layers equal | outputs equal | widest accumulator "
          "| first difference |")
    print("|---|---|---|---|---:|---:|---:|---|")
    for r in rows:
        layers = f"{r['layers_equal']}/{r['layers']}" if "layers" in r else ""
        bits = f"{r['accumulator_bits']} bits" if "accumulator_bits" in r else ""
        print(f"| {r['file']} | {r.get('qkeras', '')} | {r.get('export', '')} | {r.get('inputs', '')} | {layers} | "
              f"{r.get('outputs_equal', '')} | {bits} | {r.get('first', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
