"""Engines: things that compute a quantized model's integer outputs.

Every engine takes a C export folder (or a Graph) and integer inputs, and returns the
outputs plus, when it can, a per-layer trace. ``ENGINES`` maps a name to a factory;
the Cortex-M emulator and the hls4ml C simulation register themselves there later.
"""

from __future__ import annotations

import hashlib
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np

from hwprune import children, reference
from hwprune.backends.c import C_SOURCES, export_c, load_export, read_manifest
from hwprune.bug_log import internal_error
from hwprune.errors import DataError, ModelError, OptionError, ToolchainError
from hwprune.harness.build import HOST_FLAGS, Compiler, compile_executable, find_cc
from hwprune.ir.graph import Graph
from hwprune.ir.fixed import Fixed
from hwprune.ir.io import GRAPH_FILE, load_graph
from hwprune.paths import templates_dir
from hwprune.tempdirs import process_dir, temp_dir

Model = Union[Graph, str, Path]
RUN_TIMEOUT_S = 600


@dataclass(frozen=True, eq=False)
class EngineRun:
    engine: str
    outputs: np.ndarray  # (vectors, *output_shape), int64
    trace: tuple[tuple[str, np.ndarray], ...]  # every layer in order, or empty


class Engine(ABC):
    name: str = "engine"
    description: str = ""
    by_default: bool = True  # whether verify() runs it when no engines are named

    def available(self) -> bool:
        return not self.unavailable_reason()

    def unavailable_reason(self) -> str:
        """Empty when the engine can run here, else what is missing and how to get it."""
        return ""

    @abstractmethod
    def run(self, model: Model, x_int) -> EngineRun: ...


class ExportFolderEngine(Engine):
    """An engine that runs what one backend wrote into an export folder: ``DIR/<folder>/``
    beside ``DIR/graph.json``, given ``DIR`` or its ``c/`` subfolder; skipped on an export
    without it."""
    folder: str = ""  # the subfolder it runs
    backend: str = ""  # the ``export --backend`` that writes it
    what: str = ""  # what the subfolder holds, in messages ("hls4ml project")
    article: str = ""  # before ``what`` where a message needs one ("an ")

    def find(self, model: Model) -> Path:
        """The subfolder this engine runs, given an export folder or its ``c/`` subfolder."""
        if isinstance(model, Graph):
            raise ModelError(f"the {self.name} engine runs an export folder with {self.article}{self.what}, "
                             f"not a bare graph")
        path = Path(model)
        for root in (path, path.parent):
            if (root / self.folder).is_dir() and (root / GRAPH_FILE).is_file():
                return root / self.folder
        raise ModelError(f"{path}: no {self.what}; export with --backend {self.backend}")

    def skip_reason(self, export_dir) -> str:
        try:
            self.find(export_dir)
        except ModelError:
            return f"no {self.what} in this export (export with --backend {self.backend})"
        return ""

    def locate(self, model: Model, x_int) -> tuple[Path, Graph, np.ndarray]:
        """(the subfolder, the export's graph, ``x_int`` checked against it)."""
        folder = self.find(model)
        graph = load_graph(folder.parent)
        return folder, graph, check_inputs(graph, x_int)


def check_inputs(graph: Graph, x_int) -> np.ndarray:
    """Integer inputs as int64 ``(vectors, *input_shape)``, each inside the input type's range."""
    x = np.asarray(x_int)
    if x.dtype.kind not in "iu":
        raise DataError(f"integer inputs must have an integer dtype, got {x.dtype}; quantize float data first")
    size = int(np.prod(graph.input_shape))
    if x.shape[1:] == graph.input_shape or (x.ndim == 2 and x.shape[1] == size):
        x = x.reshape(x.shape[0], *graph.input_shape)
    elif x.shape == graph.input_shape:
        x = x.reshape(1, *graph.input_shape)
    else:
        raise DataError(f"integer inputs have shape {x.shape}; model {graph.name!r} expects (N, {size})")
    t: Fixed = graph.input_t
    bad = (x < t.min_int) | (x > t.max_int)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"integer input {int(x[idx])} at index {idx} is outside the input type {t} ({t.min_int}..{t.max_int})"
        )
    return x.astype(np.int64)


def _graph_of(model: Model) -> Graph:
    if isinstance(model, Graph):
        return model
    return load_export(model)


class ReferenceEngine(Engine):
    name = "reference"
    description = "the numpy integer reference (hwprune.reference)"

    def run(self, model: Model, x_int) -> EngineRun:
        graph = _graph_of(model)
        x = check_inputs(graph, x_int)
        steps = reference.run(graph, x, trace=True)
        trace = tuple((name, np.asarray(v, dtype=np.int64)) for name, v in steps)
        return EngineRun(self.name, trace[-1][1], trace)


# -- host C ------------------------------------------------------------------------------------

def _build_root() -> Path:
    return process_dir("build")


def build_host_driver(export_dir: Path, trace: bool = True, flags=HOST_FLAGS, compiler: Compiler | None = None) -> Path:
    """The export compiled with driver.c into a host executable; identical sources and
    flags reuse the executable built before in this process."""
    compiler = compiler or find_cc()
    driver = templates_dir() / "c" / "driver.c"
    defines = ("HWPRUNE_TRACE",) if trace else ()
    digest = hashlib.sha256()
    for part in (*compiler.command, *flags, *defines):
        digest.update(part.encode() + b"\0")
    for path in (*(Path(export_dir) / name for name in C_SOURCES), driver):
        digest.update(path.read_bytes() + b"\0")
    exe = _build_root() / f"driver-{digest.hexdigest()[:20]}"
    if not exe.exists():
        tmp = exe.with_suffix(".tmp")
        compile_executable([Path(export_dir) / "model.c", driver], tmp, [Path(export_dir)], defines, flags, compiler)
        tmp.replace(exe)
    return exe


def _parse_records(data: np.ndarray, vectors: int, sizes: list[int], traced: bool):
    """Driver output records -> (outputs (vectors, n), per-layer (vectors, n) arrays)."""
    layers = [[] for _ in sizes]
    outputs = []
    pos = 0
    try:
        for _ in range(vectors):
            for index in range(len(sizes) if traced else 0):
                tag, n = int(data[pos]), int(data[pos + 1])
                if tag != index or n != sizes[index]:
                    raise ToolchainError(f"driver trace out of step: record ({tag}, {n}), expected ({index}, {sizes[index]})")
                layers[index].append(data[pos + 2 : pos + 2 + n])
                pos += 2 + n
            tag, n = int(data[pos]), int(data[pos + 1])
            if tag != -1:
                raise ToolchainError(f"driver output out of step: record tag {tag}, expected -1")
            outputs.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
    except IndexError:
        raise ToolchainError("the driver's output file is truncated") from None
    if pos != data.size:
        raise ToolchainError(f"the driver wrote {data.size - pos} values more than expected")
    return np.array(outputs, dtype=np.int64), [np.array(v, dtype=np.int64) for v in layers]


class HostCEngine(Engine):
    name = "host"
    description = "the exported C compiled by the host C compiler and run natively"

    def __init__(self, trace: bool = True, flags=HOST_FLAGS):
        self.trace = trace
        self.flags = tuple(flags)

    def unavailable_reason(self) -> str:
        try:
            find_cc()
        except ToolchainError as exc:
            return str(exc)
        return ""

    def run(self, model: Model, x_int) -> EngineRun:
        if isinstance(model, Graph):
            with temp_dir("export") as tmp:
                export_c(model, tmp)
                return self.run(Path(tmp), x_int)
        export_dir = Path(model)
        manifest = read_manifest(export_dir)
        graph = _graph_of(export_dir)
        x = check_inputs(graph, x_int)
        exe = build_host_driver(export_dir, self.trace, self.flags)
        with temp_dir("run") as tmp:
            in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            x.reshape(x.shape[0], -1).astype("=i8").tofile(in_path)
            try:
                done = children.run([str(exe), str(in_path), str(out_path)], timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ToolchainError(f"the host build of {export_dir} ran longer than {RUN_TIMEOUT_S} s") from None
            if done.returncode != 0:
                raise internal_error(f"the host build of {export_dir} crashed (exit status {done.returncode})",
                                     f"$ {exe} {in_path} {out_path}\n{done.stderr.strip()}", code=export_dir)
            data = np.fromfile(out_path, dtype="=i8")
        sizes = [layer["size"] for layer in manifest["layers"]]
        outputs, layers = _parse_records(data, x.shape[0], sizes, self.trace)
        trace = tuple(
            (layer.name, values.reshape(x.shape[0], *graph.shape_of(layer.name)))
            for layer, values in zip(graph.layers, layers)
        ) if self.trace else ()
        return EngineRun(self.name, outputs.reshape(x.shape[0], *graph.output_shape), trace)


# -- registry ----------------------------------------------------------------------------------

ENGINES: dict[str, Callable[[], Engine]] = {}


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    ENGINES[name] = factory


def get_engine(engine: Union[str, Engine]) -> Engine:
    if isinstance(engine, Engine):
        return engine
    if engine not in ENGINES:
        raise OptionError(f"unknown engine {engine!r}; known engines are {sorted(ENGINES)}")
    return ENGINES[engine]()


def available_engines() -> list[str]:
    return [name for name, factory in ENGINES.items() if factory().available()]


register_engine(ReferenceEngine.name, ReferenceEngine)
register_engine(HostCEngine.name, HostCEngine)

__all__ = [
    "Engine", "EngineRun", "ExportFolderEngine", "ReferenceEngine", "HostCEngine", "ENGINES", "register_engine",
    "get_engine", "available_engines", "check_inputs", "build_host_driver",
]
