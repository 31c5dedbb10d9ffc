"""Ground truth without Vivado: da4ml RTL per layer, ``yosys synth_xilinx``, and a check
that the synthesized netlist computes the integer reference on the test vectors.

A netlist whose outputs differ from the reference is a ``VerificationError`` naming the
layer, the vector, the output and both values; it is never reported as a figure.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import children, reference
from hwprune.errors import ToolchainError, VerificationError
from hwprune.fpga import da
from hwprune.fpga.netlist import CARRY_CELLS, LUT_CELLS, Netlist
from hwprune.ir.graph import Graph
from hwprune.ir.fixed import Fixed
from hwprune.tempdirs import temp_dir

YOSYS_TIMEOUT_S = 3600
# lookup_table.v is left out: its $readmemh stops yosys, and no traced layer uses tables.
STATIC_SOURCES = ("shift_adder.v", "negative.v", "mux.v", "multiplier.v")


def yosys_path() -> Optional[str]:
    return shutil.which("yosys")


def unavailable_reason() -> Optional[str]:
    if yosys_path() is None:
        return "yosys is not installed (Debian/Ubuntu: apt-get install yosys)"
    try:
        da.require_da4ml()
    except ToolchainError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class SynthesizedLayer:
    name: str
    kind: str
    lut: int  # LUT1-LUT6 plus INV (an inverter occupies a LUT1 unless absorbed)
    carry: int
    ff: int
    muxf: int
    cells: dict
    estimate_lut: int  # the DA rule's LUTs for the same adder graph (da.lut_estimate)
    da4ml_cost: float  # da4ml's own cost of it
    vectors: int
    bit_exact: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "lut": self.lut, "carry": self.carry, "ff": self.ff,
                "muxf": self.muxf, "cells": dict(self.cells), "estimate_lut": self.estimate_lut,
                "da4ml_cost": self.da4ml_cost,
                "vectors": self.vectors, "bit_exact": self.bit_exact}


def synthesize_logic(logic, name: str, family: str, workdir: Path) -> Netlist:
    """Write ``logic``'s Verilog and map it with ``synth_xilinx``; the netlist it wrote."""
    if yosys_path() is None:
        raise ToolchainError("--synthesize needs yosys on PATH (Debian/Ubuntu: apt-get install yosys)")
    da.write_rtl(logic, name, workdir / name)
    # yosys splits a script's arguments at spaces: paths relative to workdir (made of the layer's
    # C name and fixed file names) keep a TMPDIR with spaces out of the script.
    src = Path(name) / "src"
    sources = [src / "static" / s for s in STATIC_SOURCES] + [src / f"{name}.v"]
    net_json = workdir / f"{name}.net.json"
    script = workdir / f"{name}.ys"
    script.write_text(
        "read_verilog " + " ".join(s.as_posix() for s in sources) + "\n"
        f"synth_xilinx -family {family} -top {name} -flatten -noiopad\n"
        f"write_json {net_json.name}\n"
    )
    proc = children.run([yosys_path(), "-q", "-s", script.name], timeout=YOSYS_TIMEOUT_S, cwd=workdir)
    if proc.returncode != 0 or not net_json.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolchainError(f"yosys failed on layer {name!r} (exit {proc.returncode}): {' | '.join(tail)}")
    return Netlist.load(net_json, name)


def check_netlist(netlist: Netlist, logic, x_int: np.ndarray, in_t: Fixed, expected: np.ndarray,
                  out_t: Fixed, where: str) -> None:
    words = da.pack_inputs(logic, x_int, in_t)
    out = netlist.evaluate({"model_inp": words})["model_out"]
    got = da.unpack_outputs(logic, out, out_t)
    expected = np.asarray(expected).reshape(len(expected), -1)
    if not np.array_equal(got, expected):
        bad = np.argwhere(got != expected)
        v, j = (int(i) for i in bad[0])
        raise VerificationError(
            f"{where}: the synthesized netlist differs from the integer reference on {len(bad)} outputs; "
            f"first at vector {v}, output {j}: netlist {got[v, j]}, reference {expected[v, j]}")


def count(netlist: Netlist) -> dict:
    cells = netlist.cell_counts()
    return {
        "lut": sum(cells.get(c, 0) for c in LUT_CELLS) + cells.get("INV", 0),
        "carry": sum(cells.get(c, 0) for c in CARRY_CELLS),
        "ff": sum(v for c, v in cells.items() if c.startswith("FD")),
        "muxf": sum(v for c, v in cells.items() if c.startswith("MUXF")),
        "cells": cells,
    }


def synthesize_layer(layer, in_shape, in_t: Fixed, out_t: Fixed, x_int, expected, family: str,
                     workdir: Path, logic=None) -> SynthesizedLayer:
    """``logic``: the layer's traced adder graph when the caller has it already."""
    logic = da.layer_logic(layer, in_shape, in_t) if logic is None else logic
    netlist = synthesize_logic(logic, layer.name, family, workdir)
    check_netlist(netlist, logic, x_int, in_t, expected, out_t, f"layer {layer.name!r}")
    figures = count(netlist)
    return SynthesizedLayer(layer.name, layer.kind, figures["lut"], figures["carry"], figures["ff"], figures["muxf"],
                            figures["cells"], da.lut_estimate(logic), float(logic.cost), int(len(x_int)), True)


def synthesize_graph(graph: Graph, x_int: np.ndarray, family: str = "xcup", progress=None) -> list[SynthesizedLayer]:
    """Every layer with logic, each on the reference's own inputs to it, checked against the
    reference's outputs of it (so the layers together compute the model)."""
    reason = unavailable_reason()
    if reason:
        raise ToolchainError(f"--synthesize: {reason}")
    values = dict(reference.run(graph, x_int, trace=True))
    values[graph.input.name] = np.asarray(x_int)
    rows = []
    layers = [l for l in graph.layers if da.supports(l)]
    with temp_dir("synth") as tmp:
        for layer in layers:
            source = layer.inputs[0]
            rows.append(synthesize_layer(layer, graph.shape_of(source), graph.type_of(source),
                                         graph.type_of(layer.name), values[source], values[layer.name], family,
                                         Path(tmp)))
            if progress is not None:
                progress(layer.name)
    return rows
