"""The Verilator engine: an export's RTL (``DIR/rtl/``, ``export --backend rtl``) simulated
cycle by cycle with its own testbench.

The testbench (``rtl/tb/tb.v``) and the sources are compiled once by ``verilator --binary``
(kept in ``cache_root()``, keyed by the sources and Verilator's version); each run writes
the integer inputs packed as the module's port carries them, feeds one vector per clock,
and reads the packed outputs back as integers of the graph's output type. ``verify``
compares them with the integer reference by equality: a mismatch names the output
element and the vector.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from hwprune import children
from hwprune.backends.rtl import RTL_DIR, Port
from hwprune.backends.rtl.project import MAX_VECTORS_IN_TESTBENCH, hex_lines
from hwprune.backends.rtl.trace import pack, unpack
from hwprune.errors import ModelError, ToolchainError
from hwprune.exportdir import read_rtl_summary
from hwprune.harness.engines import EngineRun, ExportFolderEngine, register_engine
from hwprune.harness.hls4ml_engine import cache_root
from hwprune.tempdirs import temp_dir

BUILD_TIMEOUT_S = 3600
RUN_TIMEOUT_S = 1800


def verilator_path() -> str | None:
    return shutil.which("verilator")


def _version() -> str:
    try:
        return children.run([verilator_path(), "--version"], timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "verilator"


def build(rtl: Path, summary: dict) -> Path:
    """The testbench executable of ``rtl``, compiled once per distinct sources and Verilator."""
    files = ["tb/tb.v", *summary["sources"]]
    digest = hashlib.sha256(_version().encode())
    for name in files:
        digest.update(name.encode() + b"\0" + (rtl / name).read_bytes() + b"\0")
    root = cache_root().parent / "verilator"
    final = root / digest.hexdigest()[:24]
    exe = final / "Vtb"
    if exe.is_file():
        return exe
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=root))
    try:
        command = [verilator_path(), "--binary", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "tb",
                   "--Mdir", str(tmp / "obj_dir"), "-o", "Vtb", *(str(rtl / f) for f in files)]
        try:
            done = children.run(command, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"verilator took longer than {BUILD_TIMEOUT_S} s to build {rtl}") from None
        built = tmp / "obj_dir" / "Vtb"
        if done.returncode != 0 or not built.is_file():
            tail = "; ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise ToolchainError(f"verilator failed on {rtl} (exit {done.returncode}): {tail}")
        (tmp / "out").mkdir()
        os.replace(built, tmp / "out" / "Vtb")
        try:
            os.rename(tmp / "out", final)
        except OSError:
            if not exe.is_file():  # not another process that finished the same build first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exe


def simulate(exe: Path, words: list[int], summary: dict) -> list[int]:
    """Packed input words -> packed output words, at most the testbench's memory per run."""
    out: list[int] = []
    with temp_dir("verilator") as tmp:
        for start in range(0, len(words), MAX_VECTORS_IN_TESTBENCH):
            chunk = words[start:start + MAX_VECTORS_IN_TESTBENCH]
            in_path, out_path = Path(tmp) / "in.hex", Path(tmp) / "out.hex"
            in_path.write_text(hex_lines(chunk, summary["input_width"]))
            try:
                done = children.run([str(exe), f"+vectors={len(chunk)}", f"+inputs={in_path}",
                                     f"+outputs={out_path}"], timeout=RUN_TIMEOUT_S, cwd=tmp)
            except subprocess.TimeoutExpired:
                raise ToolchainError(f"the Verilator simulation ran longer than {RUN_TIMEOUT_S} s") from None
            lines = out_path.read_text().split() if out_path.is_file() else []
            if done.returncode != 0 or len(lines) != len(chunk):
                tail = "; ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
                raise ToolchainError(f"the Verilator simulation wrote {len(lines)} of {len(chunk)} outputs "
                                     f"(exit {done.returncode}): {tail}")
            try:
                out += [int(line, 16) for line in lines]
            except ValueError:
                raise ToolchainError("the Verilator simulation wrote an output that is not hex (an x or z bit: "
                                     "an undriven output)") from None
    return out


class VerilatorEngine(ExportFolderEngine):
    name = "verilator"
    description = "the export's RTL simulated cycle by cycle with Verilator (its testbench, one vector per clock)"
    folder, backend, what = RTL_DIR, "rtl", "RTL"

    def unavailable_reason(self) -> str:
        if verilator_path() is None:
            return "verilator is not on PATH (Debian/Ubuntu: apt-get install verilator; 5.x for --binary)"
        return ""

    def run(self, model, x_int) -> EngineRun:
        rtl, graph, x = self.locate(model, x_int)
        summary = read_rtl_summary(rtl)
        in_ports = [Port.from_json(p) for p in summary["inputs"]]
        out_ports = [Port.from_json(p) for p in summary["outputs"]]
        if len(in_ports) != int(np.prod(graph.input_shape)) or len(out_ports) != int(np.prod(graph.output_shape)):
            raise ModelError(f"{rtl}: its ports ({len(in_ports)} in, {len(out_ports)} out) do not match the graph")
        exe = build(rtl, summary)
        words = simulate(exe, pack(x, in_ports, graph.input_t), summary)
        outputs = unpack(words, out_ports, graph.output_t).reshape(x.shape[0], *graph.output_shape)
        return EngineRun(self.name, outputs, ())


register_engine(VerilatorEngine.name, VerilatorEngine)
