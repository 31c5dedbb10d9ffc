"""The ``mcu`` engine: an export cross-built for a Cortex-M target and run in unicorn.

``McuEngine`` is registered as ``"mcu"``: ``verify`` compares its per-layer trace (a
traced build) and its outputs (the untraced build that is measured) with the reference.
``measure_mcu`` is the measurement on its own: instructions and cycles per inference,
total and per layer, latency, energy, flash, RAM and stack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from hwprune.backends.c import load_export, read_manifest
from hwprune.errors import DataError, TargetError, ToolchainError
from hwprune.harness.cross import CrossCompiler, build_firmware, find_cross_cc, get_core
from hwprune.harness.cycles import get_cycle_table
from hwprune.harness.emulator import emulate
from hwprune.harness.engines import Engine, EngineRun, Model, _parse_records, check_inputs, register_engine
from hwprune.targets import Target, get_target, target_from_dict

DEFAULT_TARGET = "stm32l4r5"


@dataclass(frozen=True)
class LayerCost:
    name: str
    instructions: float  # per inference, mean over the vectors
    cycles: float


@dataclass(frozen=True)
class McuMeasurement:
    """Per-inference figures of one export on one target (means over ``vectors``)."""

    target: str
    core: str
    compiler: str
    flags: tuple[str, ...]
    vectors: int
    instructions: float
    cycles: float
    instructions_min: int
    instructions_max: int
    layers: tuple[LayerCost, ...]  # every layer of the graph, in order (0 for layers without code)
    other_instructions: float  # predict's glue and the harness call
    other_cycles: float
    flash_bytes: int  # text + rodata + data of the firmware (model, start-up, harness entry)
    static_ram_bytes: int  # data + bss (the activation arena included)
    stack_bytes: int  # measured high-water mark over every vector
    arena_bytes: int  # the activation buffers (model.h)
    io_bytes: int  # the harness's input/output buffers, not counted in RAM
    clock_mhz: float
    energy_nj_per_cycle: float
    cycle_table: str

    @property
    def ram_bytes(self) -> int:
        return self.static_ram_bytes + self.stack_bytes

    @property
    def latency_us(self) -> float:
        return self.cycles / self.clock_mhz

    @property
    def energy_uj(self) -> float:
        return self.cycles * self.energy_nj_per_cycle / 1000.0

    def summary(self) -> dict:
        out = asdict(self)
        out["flags"] = list(self.flags)
        out["layers"] = [asdict(layer) for layer in self.layers]
        out.update(ram_bytes=self.ram_bytes, latency_us=self.latency_us, energy_uj=self.energy_uj)
        return out


def resolve_target(target: Union[None, str, Path, Target], export_dir: Optional[Path] = None) -> Target:
    """A Cortex-M target: given, else the one the export was made for, else the default."""
    if isinstance(target, Target):
        chosen = target
    elif target is not None:
        chosen = get_target(str(target))
    else:
        chosen = _export_target(export_dir) or get_target(DEFAULT_TARGET)
    if chosen.kind != "mcu":
        raise TargetError(f"target {chosen.name!r} is a {chosen.kind} target; the mcu engine needs a Cortex-M target")
    get_core(chosen.cpu)
    return chosen


def _export_target(export_dir: Optional[Path]) -> Optional[Target]:
    if export_dir is None:
        return None
    for folder in (Path(export_dir), Path(export_dir).parent):
        meta_path = folder / "export.json"
        if not meta_path.is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            continue
        if meta.get("format") == "hwprune-c-export":
            continue  # the C manifest, not the export folder's
        spec = meta.get("target_spec")
        if isinstance(spec, dict) and spec.get("kind") == "mcu":
            return target_from_dict({k: v for k, v in spec.items() if v is not None}, f"{meta_path}: target_spec")
        name = meta.get("target")
        if name:
            try:
                found = get_target(name)
            except TargetError:
                return None
            return found if found.kind == "mcu" else None
    return None


def c_dir_of(export_dir) -> Path:
    """The C sources of an export folder (``DIR/c``), or ``export_dir`` itself."""
    export_dir = Path(export_dir)
    return export_dir / "c" if (export_dir / "c" / "model.c").is_file() else export_dir


#: The RAM region of templates/mcu/link.ld: larger than any target's, so that a model over its
#: chip's RAM still runs in the emulator and its report says by how much (``require_fit``).
EMULATOR_RAM_BYTES = 4 << 20


def _check_ram(manifest: dict, target: Target) -> None:
    """A model whose activation arena alone exceeds both the chip's RAM and the emulator's:
    one line saying so, where the link would fail with a section overflow."""
    arena = int(manifest.get("arena_bytes", 0))
    if target.ram_bytes is None or arena <= max(target.ram_bytes, EMULATOR_RAM_BYTES):
        return
    c_bytes = lambda c_type: int("".join(ch for ch in c_type if ch.isdigit()) or 32) // 8  # noqa: E731  (intN_t)
    io = (manifest["input_size"] * c_bytes(manifest["input_c_type"]),
          manifest["output_size"] * c_bytes(manifest["output_c_type"]))
    raise TargetError(f"model {manifest['model']!r} does not fit {target.name}'s RAM: its activation arena needs "
                      f"{arena:,} B and the chip has {target.ram_bytes:,} B (its input ({io[0]:,} B) and output "
                      f"({io[1]:,} B) buffers come on top)")


def _run(c_dir: Path, x: np.ndarray, target: Target, traced: bool, count: bool, compiler, opt, progress):
    manifest = read_manifest(c_dir)
    _check_ram(manifest, target)
    fw = build_firmware(c_dir, target.cpu, traced=traced, opt=opt, compiler=compiler)
    names = [f"hwprune_{manifest['model']}_{layer['index']}_{layer['name']}" for layer in manifest["layers"]]
    names = [n if n in fw.symbols else None for n in names]
    emulation = emulate(fw, x.reshape(x.shape[0], -1), manifest["input_c_type"], manifest["output_c_type"],
                        manifest["output_size"], names, get_cycle_table(target.cpu), count=count, progress=progress)
    return manifest, fw, emulation


def measure_mcu(export_dir, target: Union[None, str, Path, Target] = None, x_int=None, vectors: Optional[int] = None,
                cc: Optional[str] = None, opt: str = "-O2", progress: bool = False) -> McuMeasurement:
    """Instructions and cycles per inference of an export on a Cortex-M target.

    ``export_dir``: an export folder (``hwprune export``) or its ``c/`` folder.
    ``target``: a target name, a TOML path or a Target (default: the export's target,
    else stm32l4r5). ``x_int``: integer inputs (default: the export's stored test
    vectors; ``vectors`` keeps the first N). ``cc``: ``"clang"`` (zig, default) or
    ``"gcc"``; ``opt``: ``-O2``, ``-Os``, ...

    Returns a McuMeasurement: ``instructions`` and ``cycles`` (means per inference),
    ``layers`` (per layer ``instructions`` and ``cycles``), ``latency_us``,
    ``energy_uj``, ``flash_bytes``, ``ram_bytes`` (= ``static_ram_bytes`` +
    ``stack_bytes``), ``arena_bytes``. Raises ToolchainError when the cross compiler or
    the emulator is missing.
    """
    c_dir = c_dir_of(export_dir)
    target = resolve_target(target, c_dir)
    graph = load_export(c_dir)
    if x_int is None:
        x_int = _stored_vectors(c_dir)
    x = check_inputs(graph, x_int)
    if vectors is not None:
        x = x[:vectors]
    compiler = find_cross_cc(cc)
    manifest, fw, emulation = _run(c_dir, x, target, False, True, compiler, opt, progress)
    return _measurement(manifest, fw, emulation, target)


def _stored_vectors(c_dir: Path) -> np.ndarray:
    path = c_dir.parent / "vectors.npz"
    if not path.is_file():
        raise DataError(f"{c_dir}: no stored test vectors ({path}); pass integer inputs")
    with np.load(path) as data:
        return data["x_int"]


def _measurement(manifest: dict, fw, emulation, target: Target) -> McuMeasurement:
    instr = emulation.instructions.mean(axis=0)
    cyc = emulation.cycles.mean(axis=0)
    totals = emulation.instructions.sum(axis=1)
    layers = tuple(LayerCost(layer["name"], float(instr[i]), float(cyc[i])) for i, layer in enumerate(manifest["layers"]))
    arena = int(manifest.get("arena_bytes", manifest.get("activation_bytes", 0)))
    return McuMeasurement(
        target=target.name, core=fw.core.name, compiler=fw.compiler, flags=fw.flags, vectors=int(totals.size),
        instructions=float(instr.sum()), cycles=float(cyc.sum()), instructions_min=int(totals.min()),
        instructions_max=int(totals.max()), layers=layers, other_instructions=float(instr[-1]),
        other_cycles=float(cyc[-1]), flash_bytes=fw.flash_bytes, static_ram_bytes=fw.static_ram_bytes,
        stack_bytes=emulation.stack_bytes, arena_bytes=arena, io_bytes=fw.io_bytes, clock_mhz=float(target.clock_mhz),
        energy_nj_per_cycle=float(target.energy_nj_per_cycle), cycle_table=get_cycle_table(target.cpu).source)


@dataclass(frozen=True, eq=False)
class McuRun(EngineRun):
    measurement: Optional[McuMeasurement] = None


class McuEngine(Engine):
    name = "mcu"
    description = "the export cross-built for a Cortex-M target and run in the unicorn emulator"
    by_default = False  # it needs a target: hwprune.harness.select.select_engines decides

    def __init__(self, target: Union[None, str, Path, Target] = None, cc: Optional[str] = None, opt: str = "-O2",
                 trace: bool = True, progress: bool = False):
        self.target = target
        self.cc = cc
        self.opt = opt
        self.trace = trace
        self.progress = progress
        self.last_measurement: Optional[McuMeasurement] = None

    def unavailable_reason(self) -> str:
        for module, package in (("unicorn", "unicorn"), ("capstone", "capstone")):
            try:
                __import__(module)
            except ImportError:
                return f"the emulator needs the {package} package: pip install {package}"
        try:
            self._compiler()
        except ToolchainError as exc:
            return str(exc)
        return ""

    def _compiler(self) -> CrossCompiler:
        return find_cross_cc(self.cc)

    def run(self, model: Model, x_int) -> McuRun:
        reason = self.unavailable_reason()
        if reason:
            raise ToolchainError(f"the mcu engine cannot run: {reason}")
        if not isinstance(model, (str, Path)):
            raise ToolchainError("the mcu engine runs export folders (hwprune export), not in-memory graphs")
        c_dir = c_dir_of(model)
        target = resolve_target(self.target, c_dir)
        graph = load_export(c_dir)
        x = check_inputs(graph, x_int)
        compiler = self._compiler()
        manifest, fw, measured = _run(c_dir, x, target, False, True, compiler, self.opt, self.progress)
        measurement = _measurement(manifest, fw, measured, target)
        self.last_measurement = measurement
        outputs = measured.outputs.reshape(x.shape[0], *graph.output_shape)
        trace: tuple = ()
        if self.trace:
            _, _, traced = _run(c_dir, x, target, True, False, compiler, self.opt, self.progress)
            sizes = [layer["size"] for layer in manifest["layers"]]
            records = [np.concatenate([words, [-1, measured.outputs.shape[1]], out])
                       for words, out in zip(traced.trace_words, traced.outputs)]
            data = np.concatenate(records) if records else np.zeros(0, dtype=np.int64)
            _, layers = _parse_records(data, x.shape[0], sizes, True)
            values = [v.reshape(x.shape[0], *graph.shape_of(layer.name)) for v, layer in zip(layers, graph.layers)]
            # The last layer is checked on the measured (untraced) build: the firmware a user ships.
            values[-1] = outputs
            trace = tuple((layer.name, v) for layer, v in zip(graph.layers, values))
        return McuRun(self.name, outputs, trace, measurement)


register_engine(McuEngine.name, McuEngine)
