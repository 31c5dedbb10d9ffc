"""The layout of an export folder, for the code that writes it and the code that reads it.

    DIR/graph.json, weights.npz     the quantized graph (``ir.io``)
    DIR/vectors.npz                 test vectors: x (source layout), x_int, y_int
    DIR/export.json                 the options and formats the export used
    DIR/c/                          C sources (``backends.c``, or ``backends.c_int8``)
    DIR/hls4ml/                     the hls4ml project (``backends.hls4ml``), when asked for
    DIR/rtl/                        pipelined Verilog and its testbench (``backends.rtl``), when asked for
    DIR/rtl/rtl.json                its ports, latency and stages (``read_rtl_summary``)
    DIR/model.tflite                the int8 model TFLite Micro runs (int8 exports)
    DIR/report.json, .md, .png      the report (``report``)
    DIR/hwprune-manifest.json       every file's hash, written last (``manifest``)

``read_vectors`` and ``load_array`` read the arrays with their checks (one line naming the
file on anything malformed); ``read_rtl_summary`` reads ``rtl/rtl.json`` for the Verilator
engine and place-and-route.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwprune.errors import DataError, ToolchainError

VECTORS_FILE = "vectors.npz"
EXPORT_FILE = "export.json"
REPORT_FILE = "report.json"
TFLITE_FILE = "model.tflite"
C_DIR = "c"
HLS4ML_DIR = "hls4ml"
RTL_DIR = "rtl"
RTL_SUMMARY = "rtl.json"
#: export.json's record of dead-channel removal (``prune.dead_channels.DeadChannels.to_json``)
DEAD_CHANNELS_KEY = "dead_channels"


def removed_channels(folder) -> dict[str, tuple[int, ...]]:
    """Tensor (layer name) -> the channels dead-channel removal took out of it, numbered as
    in the model the folder was exported from; {} when none were (or for an older folder)."""
    try:
        record = json.loads((Path(folder) / EXPORT_FILE).read_text()).get(DEAD_CHANNELS_KEY) or {}
        return {str(k): tuple(int(c) for c in v) for k, v in (record.get("removed") or {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


@dataclass(frozen=True)
class Export:
    """An export folder as the run that wrote it returns it: where it is, its report and
    its export.json, so the caller need not read them back. It stands for the folder where a
    path is expected (``os.fspath``, ``export / "c"``)."""
    folder: Path
    report: dict = field(repr=False)
    meta: dict = field(repr=False)

    def __fspath__(self) -> str:
        return os.fspath(self.folder)

    def __truediv__(self, name) -> Path:
        return self.folder / name

    def __str__(self) -> str:
        return str(self.folder)


def read_vectors(folder, graph=None) -> dict[str, np.ndarray]:
    """The stored test vectors of an export folder (x, x_int, y_int), checked; against
    ``graph`` (an ``ir.Graph``) too when it is given."""
    path = Path(folder) / VECTORS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; the test vectors are missing (run hwprune export again)") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}); run hwprune export again") from None
    missing = [key for key in ("x", "x_int", "y_int") if key not in arrays]
    if missing:
        raise DataError(f"{path}: arrays {missing} are missing; it holds {sorted(arrays)}")
    x, x_int, y_int = arrays["x"], arrays["x_int"], arrays["y_int"]
    if x.dtype.kind != "f" or x_int.dtype.kind not in "iu" or y_int.dtype.kind not in "iu":
        raise DataError(f"{path}: x must be floats and x_int, y_int integers; got {x.dtype}, {x_int.dtype}, {y_int.dtype}")
    if not (len(x) == len(x_int) == len(y_int)) or len(x) == 0:
        raise DataError(f"{path}: x, x_int and y_int must hold the same nonzero number of vectors, "
                        f"got {len(x)}, {len(x_int)}, {len(y_int)}")
    if graph is not None:
        graph.from_source(x, f"{path}: x")
        if x_int.shape[1:] != graph.input_shape or y_int.shape[1:] != graph.output_shape:
            raise DataError(f"{path}: x_int has shape {x_int.shape} and y_int {y_int.shape}; model {graph.name!r} "
                            f"needs (N, {', '.join(map(str, graph.input_shape))}) and (N, "
                            f"{', '.join(map(str, graph.output_shape))})")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: x holds a non-finite value")
    return arrays


def read_rtl_summary(rtl_dir) -> dict:
    """``rtl.json`` of an RTL export folder (``DIR/rtl/``), as ``backends.rtl`` wrote it."""
    path = Path(rtl_dir) / RTL_SUMMARY
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolchainError(f"{path}: missing or unreadable ({exc}); re-export with --backend rtl") from None


def load_array(path, what: str) -> np.ndarray:
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{what} {path}: is a folder; give a .npy file") from None
    except EOFError:
        raise DataError(f"{what} {path}: not a readable .npy array (the file is empty or cut short)") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{what} {path}: not a readable .npy array ({exc})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise DataError(f"{what} {path}: give a single .npy array, not an .npz archive")
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{what} {path}: expected numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise DataError(f"{what} {path}: non-finite value at index {idx}")
    return arr.astype(np.float64)
