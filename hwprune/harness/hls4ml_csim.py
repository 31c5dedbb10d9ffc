"""Run a compiled hls4ml project (its Python bridge library) on inputs: the C simulation.

Run as ``python -m hwprune.harness.hls4ml_csim LIB.so PROJECT IN.npy OUT.npy N_OUT [TRACE.npz
NAME=SIZE ...]`` in a subprocess of its own (with the trace arguments, a project written with
hls4ml's trace hooks also saves the listed layers' outputs, one array per name): the library loads its weights from the project folder on the first
call and calls exit() inside the interpreter when they are missing, so it must never be
loaded into the process that asked for the simulation.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np


class _TraceData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p)]


def main(argv: list[str]) -> int:
    library, project, in_path, out_path, n_out = argv[:5]
    trace_path, sizes = (argv[5], dict(a.rsplit("=", 1) for a in argv[6:])) if len(argv) > 5 else (None, {})
    sizes = {name: int(size) for name, size in sizes.items()}
    lib = ctypes.cdll.LoadLibrary(library)
    fn = getattr(lib, f"{project}_double")
    pointer = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
    fn.argtypes = [pointer, pointer]
    fn.restype = None
    x = np.ascontiguousarray(np.load(in_path), dtype=np.float64)
    y = np.zeros((x.shape[0], int(n_out)), dtype=np.float64)
    traces = {name: np.zeros((x.shape[0], size)) for name, size in sizes.items()}
    if trace_path:
        lib.allocate_trace_storage.argtypes = [ctypes.c_size_t]
        lib.collect_trace_output.argtypes = [ctypes.POINTER(_TraceData)]
        lib.allocate_trace_storage(ctypes.sizeof(ctypes.c_double))  # the layers' outputs as doubles
        # collect_trace_output fills one slot per traced layer of the project, those hls4ml
        # inserted included: as many as the bridge registers (the run's folder holds it).
        registered = Path(f"{project}_bridge.cpp").read_text().count("trace_outputs->insert")
        slots = (_TraceData * max(registered, len(sizes)))()
    for i in range(x.shape[0]):
        row = np.ascontiguousarray(x[i])
        out = np.zeros(int(n_out), dtype=np.float64)
        fn(row, out)
        y[i] = out
        if trace_path:
            lib.collect_trace_output(slots)
            for slot in slots:
                name = slot.name.decode() if slot.name else ""
                if name in traces:
                    data = ctypes.cast(slot.data, ctypes.POINTER(ctypes.c_double))
                    traces[name][i] = np.ctypeslib.as_array(data, shape=(sizes[name],))
    if trace_path:
        lib.free_trace_storage()
        np.savez(trace_path, **traces)
    np.save(out_path, y)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
