"""HGQ's own proxy model as the oracle of an HGQ ``.h5`` file, in a Python with TensorFlow.

HGQ (``pip install hgq``: TensorFlow 2 and Keras 2) is no dependency of hwprune: this script
runs in another interpreter (``--python``, default ``$HWPRUNE_TF_PYTHON`` or
``/work/tfvenv/bin/python``) and talks through ``.npy`` files.

Run on its own, it compares an hwprune export of the file with HGQ element by element:

    python -m benchmarks.hgq_oracle MODEL.h5 EXPORT_DIR

reads the export's test vectors (``vectors.npz``: the float inputs and the integer outputs of
the reference), runs HGQ's model on the same float inputs and prints how many outputs are
equal as numbers (the integers over ``2^frac`` of the graph's output type) and how many
argmaxes agree. Exit 0 when every output is equal. ``--serve X.npy Y.npy MODEL.h5`` is the
part that runs under TensorFlow (the survey calls it through ``hgq_outputs``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

DEFAULT_PYTHON = "/work/tfvenv/bin/python"


def tf_python() -> str:
    return os.environ.get("HWPRUNE_TF_PYTHON", DEFAULT_PYTHON)


def _serve(x_path: str, y_path: str, model_path: str) -> None:
    """Under TensorFlow: HGQ's proxy model (its custom objects registered by importing HGQ)
    on the inputs of ``x_path``, in float32 as HGQ computes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from HGQ.proxy import FixedPointQuantizer, UnaryLUT  # TensorFlow's side only: imported here
    from tensorflow import keras
    model = keras.models.load_model(model_path, compile=False,
                                    custom_objects={"FixedPointQuantizer": FixedPointQuantizer, "UnaryLUT": UnaryLUT})
    x = np.load(x_path).astype(np.float32)
    y = model.predict(x, verbose=0, batch_size=100)
    np.save(y_path, np.asarray(y, dtype=np.float32).reshape(len(x), -1))


def hgq_outputs(model: Path, x: np.ndarray, work: Path, python: str | None = None) -> np.ndarray:
    """HGQ's outputs of ``model`` on ``x`` (float32, one row per input), from a subprocess."""
    work.mkdir(parents=True, exist_ok=True)
    x_path, y_path = work / "hgq_x.npy", work / "hgq_y.npy"
    np.save(x_path, np.asarray(x, dtype=np.float32))
    done = subprocess.run([python or tf_python(), str(Path(__file__).resolve()), "--serve", str(x_path), str(y_path),
                           str(model)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"HGQ could not run {model.name}: {lines[-1] if lines else 'exit ' + str(done.returncode)}")
    return np.load(y_path)


def hgq_oracle(path: Path):
    """For ``benchmarks/survey.py``: ``("HGQ", make_oracle)`` when ``path`` is an HGQ proxy
    ``.h5`` file (it holds a ``FixedPointQuantizer``), else None."""
    if path.suffix != ".h5":
        return None
    with h5py.File(path, "r") as h5:
        config = h5.attrs.get("model_config", b"")
    if '"FixedPointQuantizer"' not in (config.decode() if isinstance(config, bytes) else str(config)):
        return None

    def make_oracle(model: Path, _architecture, work: Path):
        from hwprune.pipeline import load_model  # the input shape as hwprune reads the file
        shape = tuple(load_model(model).input_shape)
        return shape, lambda x: hgq_outputs(model, x, work / "hgq"), "HGQ"

    return "HGQ", make_oracle


def compare(model: Path, export: Path, work: Path, python: str | None = None) -> dict:
    """HGQ against the export's reference outputs: equal values and equal argmaxes."""
    graph = json.loads((export / "graph.json").read_text())
    out_name = graph["outputs"][0]
    out_t = next((layer for layer in graph["layers"] if layer["name"] == out_name), {}).get("result_t")
    frac = _frac_bits(out_t)
    with np.load(export / "vectors.npz") as vectors:
        x, y_int = vectors["x"], vectors["y_int"]
    y_int = y_int.reshape(len(x), -1)
    y_hgq = hgq_outputs(model, x, work, python).astype(np.float64)
    y_ref = np.ldexp(y_int.astype(np.float64), -frac)
    equal = y_ref == y_hgq
    return {"file": model.name, "inputs": len(x), "outputs": int(equal.size), "equal": int(equal.sum()),
            "argmax": int(np.sum(np.argmax(y_ref, axis=1) == np.argmax(y_hgq, axis=1))),
            "first_difference": None if equal.all() else _first(equal, y_ref, y_hgq)}


def _frac_bits(t: str | None) -> int:
    from hwprune.ir.fixed import Fixed  # here: the --serve side runs where hwprune is not installed
    if t is None:
        raise ValueError("the export's output layer declares no type")
    return Fixed.parse(t).frac_bits


def _first(equal: np.ndarray, y_ref: np.ndarray, y_hgq: np.ndarray) -> str:
    row, col = (int(i) for i in np.argwhere(~equal)[0])
    return f"input {row}, output {col}: hwprune {y_ref[row, col]!r}, HGQ {y_hgq[row, col]!r}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        _serve(*argv[1:4])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="an HGQ proxy model saved as .h5")
    p.add_argument("export", type=Path, help="an hwprune export folder of that file")
    p.add_argument("--python", help=f"a Python with HGQ and TensorFlow (default {DEFAULT_PYTHON})")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hwprune-hgq-") as work:
        result = compare(args.model, args.export, Path(work), args.python)
    print(json.dumps(result, indent=1))
    return 0 if result["equal"] == result["outputs"] else 1


if __name__ == "__main__":
    sys.exit(main())
