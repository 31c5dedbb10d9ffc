"""The int8 dialect's C (``backends.c_int8``) built on the host with a driver that records
every layer's outputs, and run: the ``host`` engine of an int8 export."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hwprune import children
from hwprune.backends.c_int8 import SOURCE
from hwprune.errors import ToolchainError
from hwprune.harness.build import HOST_FLAGS, find_cc
from hwprune.ir.graph import Graph

DRIVER = """#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
static FILE *trace_out;
#define HWPRUNE_INT8_TRACE(index, data, size) fwrite((data), 1, (size), trace_out)
#include "model_int8.c"
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *in = fopen(argv[1], "rb");
    trace_out = fopen(argv[2], "wb");
    if (!in || !trace_out) return 2;
    static int8_t x[%(in_size)d], y[%(out_size)d];
    while (fread(x, 1, sizeof x, in) == sizeof x) %(name)s_predict(x, y);
    fclose(in);
    return fclose(trace_out) != 0;
}
"""


def run_host(graph: Graph, c_dir: Path, x_int: np.ndarray, work: Path,
             defines: tuple[str, ...] = ()) -> list[tuple[str, np.ndarray]]:
    """Compile ``c_dir``'s model with a tracing driver and run it; every layer's outputs.
    ``defines``: preprocessor names set for the build (``HWPRUNE_INT8_PORTABLE_SIMD`` runs
    the DSP kernels with their instructions written in C)."""
    compiler = find_cc()
    sizes = [int(np.prod(s)) for s in (graph.shape_of(layer.name) for layer in graph.layers)]
    driver = work / "driver_int8.c"
    driver.write_text(DRIVER % {"in_size": int(np.prod(graph.input_shape)), "out_size": int(np.prod(graph.output_shape)),
                                "name": graph.name})
    digest = hashlib.sha256((Path(c_dir) / SOURCE).read_bytes() + " ".join(defines).encode()).hexdigest()[:12]
    exe = work / f"int8-{digest}"
    flags = [*HOST_FLAGS, *(f"-D{name}" for name in defines)]
    if not exe.exists():  # the same sources in the same work folder: built once
        done = children.run([*compiler.command, *flags, "-I", str(c_dir), "-o", str(exe), str(driver)], timeout=600)
        if done.returncode != 0:
            raise ToolchainError(f"compiling the int8 C of {c_dir} failed: {done.stderr.strip()[:500]}")
    (work / "in.bin").write_bytes(np.asarray(x_int, dtype=np.int8).tobytes())
    done = children.run([str(exe), str(work / "in.bin"), str(work / "out.bin")], timeout=600, text=False)
    if done.returncode != 0:
        raise ToolchainError(f"the int8 host build of {c_dir} failed (exit status {done.returncode})")
    data = np.fromfile(work / "out.bin", dtype=np.int8).astype(np.int64)
    n = len(x_int)
    if data.size != n * sum(sizes):
        raise ToolchainError(f"the int8 host driver wrote {data.size} values, expected {n * sum(sizes)}")
    per_vector = data.reshape(n, sum(sizes))
    offsets = np.cumsum([0, *sizes])
    return [(layer.name, per_vector[:, offsets[i]:offsets[i + 1]].reshape(n, *shape))
            for i, (layer, shape) in enumerate((layer, graph.shape_of(layer.name)) for layer in graph.layers)]
