"""Run a compiled hls4ml project (its Python bridge library) on inputs: the C simulation.

Run as ``python -m hwprune.harness.hls4ml_csim LIB.so PROJECT IN.npy OUT.npy N_OUT`` in a
subprocess of its own: the library loads its weights from the project folder on the first
call and calls exit() inside the interpreter when they are missing, so it must never be
loaded into the process that asked for the simulation.
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np


def main(argv: list[str]) -> int:
    library, project, in_path, out_path, n_out = argv
    lib = ctypes.cdll.LoadLibrary(library)
    fn = getattr(lib, f"{project}_double")
    pointer = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
    fn.argtypes = [pointer, pointer]
    fn.restype = None
    x = np.ascontiguousarray(np.load(in_path), dtype=np.float64)
    y = np.zeros((x.shape[0], int(n_out)), dtype=np.float64)
    for i in range(x.shape[0]):
        row = np.ascontiguousarray(x[i])
        out = np.zeros(int(n_out), dtype=np.float64)
        fn(row, out)
        y[i] = out
    np.save(out_path, y)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
