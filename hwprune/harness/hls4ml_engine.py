"""The hls4ml C simulation engine: an export's hls4ml project compiled with g++ and run.

The project (``DIR/hls4ml/``, written by ``export --backend hls4ml``) is copied into a
build folder, compiled by its own ``build_lib.sh`` (what ``ModelGraph.compile()`` runs),
and run by ``hls4ml_csim`` in a subprocess. Its outputs are real values of the output
type; they are turned back into integers exactly (``from_grid``) and compared with the
integer reference by equality. An identical project reuses the library built before, in
this run or an earlier one (``cache_root()``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import cachedir, children, reference
from hwprune.backends.hls4ml.project import export_hls4ml, read_summary
from hwprune.bug_log import internal_error
from hwprune.errors import ToolchainError
from hwprune.harness.engines import EngineRun, ExportFolderEngine, register_engine
from hwprune.hls4ml_options import options_from_json
from hwprune.ir.graph import Graph
from hwprune.ir.fixed import from_grid, to_real
from hwprune.tempdirs import temp_dir

PROJECT_DIR = "hls4ml"
BUILD_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 600


def cache_root() -> Path:
    """Where compiled projects are kept between runs (bounded in size: ``cachedir``)."""
    return cachedir.cache_root() / "hls4ml"


_WEIGHTS_LINE = 'WEIGHTS_DIR="\\"${BASEDIR}/firmware/weights\\""'


def _compiler_id() -> str:
    try:
        return children.run(["g++", "--version"], timeout=60).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "g++"


_COMPILE_LINES = ("-c firmware/${PROJECT}.cpp -o ${PROJECT}.o", "-c ${PROJECT}_bridge.cpp -o ${PROJECT}_bridge.o")


def _parallel_compiles(script: str) -> str:
    """hls4ml's build_lib.sh with its two translation units (the model, the bridge)
    compiled at the same time when there are two cores: the build takes the longer of
    the two compiles instead of their sum. The flags and the result are unchanged."""
    lines = script.splitlines()
    where = [i for i, line in enumerate(lines) if any(line.rstrip().endswith(c) for c in _COMPILE_LINES)]
    if len(where) != 2 or where[1] != where[0] + 1 or (os.cpu_count() or 1) < 2:
        return script
    first, second = where
    lines[first] = lines[first] + " &\nHWPRUNE_MODEL_PID=$!"
    lines[second] = lines[second] + "\nwait $HWPRUNE_MODEL_PID"
    return "\n".join(lines) + "\n"


def build_library(project: Path, summary: dict) -> tuple[Path, Path]:
    """(the project's compiled bridge library, the folder to run it in), compiled once per
    distinct project and compiler and kept in ``cache_root()``.

    The library reads its weights from ``WEIGHTS_DIR``; hls4ml's build_lib.sh bakes in an
    absolute path, which hwprune makes relative (the simulation runs in the folder), so
    a finished build can be moved into the cache atomically."""
    digest = hashlib.sha256(repr((sorted(summary["files"].items()), _compiler_id())).encode()).hexdigest()[:24]
    root = cache_root()
    final = root / digest
    if final.is_dir():
        cachedir.touch(final)
    else:
        cachedir.max_bytes()  # a malformed bound fails before the compile
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=root))
        try:
            shutil.copytree(project, tmp / "p")
            script = (tmp / "p" / "build_lib.sh").read_text()
            if _WEIGHTS_LINE not in script:
                raise ToolchainError(f"{project}/build_lib.sh does not set WEIGHTS_DIR as hls4ml 1.3.0 does")
            script = _parallel_compiles(script.replace(_WEIGHTS_LINE, 'WEIGHTS_DIR="\\"firmware/weights\\""'))
            (tmp / "p" / "build_lib.sh").write_text(script)
            try:
                done = children.run(["bash", "build_lib.sh"], cwd=tmp / "p", timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ToolchainError(f"compiling the hls4ml project {project} took longer than {BUILD_TIMEOUT_S} s") from None
            if done.returncode != 0:
                raise internal_error(f"g++ failed on the hls4ml project {project}",
                                     f"$ bash build_lib.sh (in a copy of {project})\n{done.stdout}\n{done.stderr}",
                                     code=project)
            try:
                os.rename(tmp / "p", final)
            except OSError:
                if not final.is_dir():  # not another process that finished the same build first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        cachedir.evict(root, keep=final)
    libraries = sorted((final / "firmware").glob(f"{summary['project']}-*.so"))
    if len(libraries) != 1:
        raise ToolchainError(f"the build of {project} in {final} left {len(libraries)} libraries; expected one")
    return libraries[0], final


class Hls4mlEngine(ExportFolderEngine):
    name = "hls4ml"
    description = "the export's hls4ml project, compiled with g++ and run (C simulation)"
    folder, backend, what, article = PROJECT_DIR, "hls4ml", "hls4ml project", "an "

    def unavailable_reason(self) -> str:
        if not shutil.which("g++"):
            return "g++ is not on PATH (Debian: apt-get install g++); hls4ml's C simulation needs it"
        return ""

    def run(self, model, x_int) -> EngineRun:
        project, graph, x = self.locate(model, x_int)
        summary = read_summary(project)
        library, workdir = build_library(project, summary)
        y = _simulate(project, summary, library, workdir, graph, x)
        outputs = from_grid(y, graph.output_t, f"C simulation outputs of {project}").reshape(x.shape[0],
                                                                                           *graph.output_shape)
        trace: tuple = ()
        expected = reference.run(graph, x)
        if not np.array_equal(outputs, expected.reshape(outputs.shape)):
            # Where it starts to differ: every layer from the traced twin, except the last,
            # which is judged on this project's own outputs (the one a user builds).
            last = graph.layers[-1].name
            trace = (*((n, v) for n, v in trace_layers(graph, summary, x, expected) if n != last), (last, outputs))
        return EngineRun(self.name, outputs, trace)


def _simulate(project: Path, summary: dict, library: Path, workdir: Path, graph: Graph, x: np.ndarray,
              traced: Optional[dict] = None) -> tuple:
    """The C simulation's outputs as reals (vectors, outputs); with ``traced`` ({hls4ml layer:
    size}) also those layers' outputs, as (outputs, {layer: reals})."""
    n_out = int(np.prod(graph.output_shape))
    with temp_dir("csim") as tmp:
        in_path, out_path, trace_path = Path(tmp) / "x.npy", Path(tmp) / "y.npy", Path(tmp) / "trace.npz"
        np.save(in_path, to_real(x.reshape(x.shape[0], -1), graph.input_t))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        command = [sys.executable, "-m", "hwprune.harness.hls4ml_csim", str(library), summary["project"],
                   str(in_path), str(out_path), str(n_out)]
        if traced is not None:
            command += [str(trace_path), *(f"{name}={size}" for name, size in traced.items())]
        try:
            done = children.run(command, timeout=RUN_TIMEOUT_S, env=env, cwd=workdir)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"C simulation of {project} ran longer than {RUN_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise internal_error(f"C simulation of {project} failed (exit {done.returncode})",
                                 f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}", code=project)
        y = np.load(out_path)
        if traced is None:
            return y
        with np.load(trace_path) as data:
            return y, {name: data[name] for name in data.files}


def trace_layers(graph: Graph, summary: dict, x: np.ndarray, y_int: np.ndarray) -> tuple:
    """Every layer's output in C simulation, as integers of the layer's type: a twin of the
    project written with hls4ml's trace hooks, compiled (cached like any build) and run on
    ``x``. Layers hls4ml inserts (stream padding, repacking) are not in the graph and are
    left out; so are layers with no hls4ml counterpart (a final softmax)."""
    options = options_from_json(summary["options"])
    with temp_dir("trace") as tmp:
        twin = Path(tmp) / PROJECT_DIR
        export_hls4ml(graph, twin, options, x, y_int.reshape(x.shape[0], -1), trace=True)
        twin_summary = read_summary(twin)
        library, workdir = build_library(twin, twin_summary)
    in_project = {row["name"] for row in twin_summary["layers"] if row.get("in_project")}
    sizes = {layer.name: int(np.prod(graph.shape_of(layer.name))) for layer in graph.layers if layer.name in in_project}
    _, reals = _simulate(twin, twin_summary, library, workdir, graph, x, traced=sizes)
    out = []
    for layer in graph.layers:
        if layer.name in reals:
            values = from_grid(reals[layer.name], graph.type_of(layer.name), f"C simulation trace of layer {layer.name!r}")
            out.append((layer.name, values.reshape(x.shape[0], *graph.shape_of(layer.name))))
    return tuple(out)


register_engine(Hls4mlEngine.name, Hls4mlEngine)
