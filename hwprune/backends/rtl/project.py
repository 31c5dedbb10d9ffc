"""``export --backend rtl``: the quantized graph as one pipelined Verilog module in ``DIR/rtl/``.

::

    rtl/src/NAME.v              the top module: clk, model_inp, model_out; inputs and
                                outputs registered, one register stage per clock's worth of
                                adder levels (da4ml's pipelining)
    rtl/src/NAME_stageK.v       the combinational logic of stage K (da4ml)
    rtl/src/static/*.v          da4ml's shift-adder, negation, mux and multiplier cells
    rtl/tb/tb.v                 a testbench: reads packed inputs (hex, one vector a line),
                                writes packed outputs; Verilator (--binary) or any simulator
    rtl/tb/inputs.hex           the export's test vectors, packed
    rtl/tb/expected.hex         the integer reference's outputs, packed the same way
    rtl/rtl.json                ports (width, fraction bits, sign of every scalar), latency,
                                clock, stages, da4ml's cost; what the engines and pnr read
    rtl/README.md               the tools and commands

The pipeline depth follows the clock: at ``levels_per_cycle`` levels of logic per clock (the
period over ``adder_level_ns``; ``stages.py`` says what a level is), da4ml cuts the adder
graph into stages. A result cycle is
``stages + 1`` clocks after its input (the input register, the stage registers, the
output register).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2
import numpy as np

from hwprune import __version__
from hwprune.exportdir import RTL_DIR, RTL_SUMMARY  # RTL_DIR: re-exported by backends.rtl
from hwprune.backends.rtl import trace
from hwprune.fpga import stages
from hwprune.fpga.stages import DEFAULT_ADDER_LEVEL_NS
from hwprune.errors import OptionError, ToolchainError
from hwprune.ir.graph import Graph
from hwprune.paths import templates_dir
from hwprune.tempdirs import temp_dir

# da4ml's cells the traced graphs use; lookup_table.v is left out (its $readmemh needs
# table files, and no traced layer uses tables: a table op is refused below).
STATIC_SOURCES = ("shift_adder.v", "negative.v", "mux.v", "multiplier.v")
DEFAULT_CLOCK_MHZ = 200.0
MAX_VECTORS_IN_TESTBENCH = 2000  # the testbench's input memory (the export keeps at most 2,000)


@dataclass(frozen=True)
class RtlOptions:
    clock_mhz: float = DEFAULT_CLOCK_MHZ
    adder_level_ns: float = DEFAULT_ADDER_LEVEL_NS

    def __post_init__(self) -> None:
        for key in ("clock_mhz", "adder_level_ns"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
                flag = "--clock-mhz" if key == "clock_mhz" else key
                raise OptionError(f"{flag} must be a positive number, got {value!r}")

    @property
    def levels_per_cycle(self) -> float:
        """Levels of logic (a carry chain is one, a LUT half) between two registers; at least
        one carry chain and its gate (``stages.pipeline``)."""
        return stages.levels_per_cycle(self.clock_mhz, self.adder_level_ns)

    def to_json(self) -> dict:
        return asdict(self)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "rtl")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def hex_lines(words: list[int], width: int) -> str:
    digits = max(1, math.ceil(width / 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def export_rtl(graph: Graph, out_dir, options: RtlOptions, x_int: np.ndarray, y_int: np.ndarray) -> dict:
    """Write ``out_dir`` (the export's ``rtl/``); returns the summary written to rtl.json."""
    import da4ml
    from da4ml.codegen import VerilogModel

    logic = trace.trace_graph(graph)
    if any(abs(op.opcode) == 8 for op in logic.ops):  # da4ml's lookup-table op: not emitted here
        raise ToolchainError(f"model {graph.name!r}: da4ml traced a lookup table, which --backend rtl does not write")
    out_dir = Path(out_dir)
    name = graph.name
    with temp_dir("rtl") as tmp:
        # da4ml writes a whole project (Vivado/Quartus scripts, a C++ binder); only the
        # Verilog is kept, so the folder holds what the flow uses and nothing that varies.
        pipe = stages.pipeline(logic, options.levels_per_cycle)
        VerilogModel(pipe, name, tmp, print_latency=False).write()
        src = out_dir / "src"
        (src / "static").mkdir(parents=True)
        for path in sorted((Path(tmp) / "src").glob(f"{name}*.v")):
            if path.name != f"{name}_wrapper.v":
                shutil.copy(path, src / path.name)
        for static in STATIC_SOURCES:
            text = (Path(tmp) / "src" / "static" / static).read_text()
            # A lint pragma name Verilator added in 5.010; 5.006 (Debian 12) stops on it.
            # WIDTH is its older name and covers it in every version; no logic changes.
            (src / "static" / static).write_text(text.replace("WIDTHTRUNC", "WIDTH"))
    n_stages = len(pipe.solutions)
    in_ports, out_ports = trace.ports(logic)
    in_width, out_width = sum(p.width for p in in_ports), sum(p.width for p in out_ports)
    y = np.asarray(y_int).reshape(len(y_int), -1)
    (out_dir / "tb").mkdir()
    (out_dir / "tb" / "inputs.hex").write_text(hex_lines(trace.pack(x_int, in_ports, graph.input_t), in_width))
    expected = pack_outputs(y, out_ports, graph.output_t)
    (out_dir / "tb" / "expected.hex").write_text(hex_lines(expected, out_width))
    summary = {
        "module": name,
        "hwprune_version": __version__,
        "da4ml_version": da4ml.__version__,
        "options": options.to_json(),
        "levels_per_cycle": options.levels_per_cycle,
        "levels": stages.depth(logic),
        "stages": n_stages,
        "latency_cycles": n_stages + 1,
        "latency_ns": (n_stages + 1) * 1000.0 / options.clock_mhz,
        "da4ml_cost": float(logic.cost),
        "register_bits": int(pipe.reg_bits) + out_width,
        "inputs": [p.to_json() for p in in_ports],
        "outputs": [p.to_json() for p in out_ports],
        "input_width": in_width,
        "output_width": out_width,
        "vectors": int(len(x_int)),
        "sources": sorted(str(p.relative_to(out_dir)) for p in (out_dir / "src").rglob("*.v")),
    }
    context = dict(summary, graph=graph, input_t=str(graph.input_t), output_t=str(graph.output_t),
                   port_width=max(in_width, 1), out_port_width=max(out_width, 1),
                   max_vectors=MAX_VECTORS_IN_TESTBENCH, top_sources=" ".join(summary["sources"]))
    env = _environment()
    (out_dir / "tb" / "tb.v").write_text(env.get_template("tb.v.j2").render(context))
    (out_dir / "README.md").write_text(env.get_template("README.md.j2").render(context))
    (out_dir / RTL_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def pack_outputs(y_int: np.ndarray, out_ports: list, out_t) -> list[int]:
    """Reference outputs (on ``out_t``'s grid) packed as ``model_out`` carries them."""
    words = []
    for row in np.asarray(y_int).reshape(len(y_int), -1):
        word, pos = 0, 0
        for value, p in zip(row, out_ports):
            if p.width:
                shift = out_t.frac_bits - p.frac_bits
                raw = int(value) >> shift if shift >= 0 else int(value) << -shift
                word |= (raw & ((1 << p.width) - 1)) << pos
            pos += p.width
        words.append(word)
    return words
