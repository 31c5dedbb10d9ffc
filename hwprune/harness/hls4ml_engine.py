"""The hls4ml C simulation engine: an export's hls4ml project compiled with g++ and run.

The project (``DIR/hls4ml/``, written by ``export --backend hls4ml``) is copied into a
build folder, compiled by its own ``build_lib.sh`` (what ``ModelGraph.compile()`` runs),
and run by ``hls4ml_csim`` in a subprocess. Its outputs are real values of the output
type; they are turned back into integers exactly (``from_grid``) and compared with the
integer reference by equality. Identical projects reuse the library built before in this
process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hwprune.errors import ModelError, ToolchainError
from hwprune.harness.engines import Engine, EngineRun, _build_root, check_inputs, register_engine
from hwprune.ir.graph import Graph
from hwprune.ir.io import GRAPH_FILE, load_graph
from hwprune.quant.fixed import from_grid, to_real

PROJECT_DIR = "hls4ml"
BUILD_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 600


def find_project(model) -> Path:
    """The hls4ml project of an export folder, given the folder or its ``c/`` subfolder."""
    if isinstance(model, Graph):
        raise ModelError("the hls4ml engine runs an export folder with an hls4ml project, not a bare graph")
    path = Path(model)
    for root in (path, path.parent):
        if (root / PROJECT_DIR).is_dir() and (root / GRAPH_FILE).is_file():
            return root / PROJECT_DIR
    raise ModelError(f"{path}: no hls4ml project; export with --backend hls4ml")


def build_library(project: Path, summary: dict) -> Path:
    """The project's bridge library, compiled once per distinct project in this process."""
    digest = hashlib.sha256(repr(sorted(summary["files"].items())).encode()).hexdigest()[:20]
    build = _build_root() / f"hls4ml-{digest}"
    if not (build / "built").exists():
        # Built in place: the library holds the absolute path of its weights folder.
        shutil.rmtree(build, ignore_errors=True)
        shutil.copytree(project, build)
        try:
            done = subprocess.run(["bash", "build_lib.sh"], cwd=build, capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            shutil.rmtree(build, ignore_errors=True)
            raise ToolchainError(f"compiling the hls4ml project {project} took longer than {BUILD_TIMEOUT_S} s") from None
        if done.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            tail = "; ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ToolchainError(f"g++ failed on the hls4ml project {project}: {tail}")
        (build / "built").touch()
    libraries = sorted((build / "firmware").glob(f"{summary['project']}-*.so"))
    if len(libraries) != 1:
        raise ToolchainError(f"build_lib.sh of {project} left {len(libraries)} libraries; expected one")
    return libraries[0]


class Hls4mlEngine(Engine):
    name = "hls4ml"
    description = "the export's hls4ml project, compiled with g++ and run (C simulation)"

    def unavailable_reason(self) -> str:
        if not shutil.which("g++"):
            return "g++ is not on PATH (Debian: apt-get install g++); hls4ml's C simulation needs it"
        return ""

    def skip_reason(self, export_dir) -> str:
        try:
            find_project(export_dir)
        except ModelError:
            return "no hls4ml project in this export (export with --backend hls4ml)"
        return ""

    def run(self, model, x_int) -> EngineRun:
        from hwprune.backends.hls4ml.project import read_summary

        project = find_project(model)
        graph = load_graph(project.parent)
        x = check_inputs(graph, x_int)
        summary = read_summary(project)
        library = build_library(project, summary)
        n_out = int(np.prod(graph.output_shape))
        with tempfile.TemporaryDirectory(prefix="hwprune-csim-") as tmp:
            in_path, out_path = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
            np.save(in_path, to_real(x.reshape(x.shape[0], -1), graph.input_t))
            env = dict(os.environ, OMP_NUM_THREADS="1")
            try:
                done = subprocess.run([sys.executable, "-m", "hwprune.harness.hls4ml_csim", str(library),
                                       summary["project"], str(in_path), str(out_path), str(n_out)],
                                      capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
            except subprocess.TimeoutExpired:
                raise ToolchainError(f"C simulation of {project} ran longer than {RUN_TIMEOUT_S} s") from None
            if done.returncode != 0:
                tail = "; ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                raise ToolchainError(f"C simulation of {project} failed (exit {done.returncode}): {tail}")
            y = np.load(out_path)
        outputs = from_grid(y, graph.output_t, f"C simulation outputs of {project}")
        return EngineRun(self.name, outputs.reshape(x.shape[0], *graph.output_shape), ())


register_engine(Hls4mlEngine.name, Hls4mlEngine)
