"""Evaluate a Xilinx netlist written by yosys (``write_json``) on many input vectors.

The synthesized netlist is checked by computing it, cell by cell, from the primitives'
documented behaviour (UG953, 7 Series / UltraScale Libraries Guide): ``LUT1``–``LUT6``
(output = ``INIT[inputs]``), ``CARRY4``/``CARRY8`` (``O = S ^ carry``, ``CO = S ? carry :
DI``), ``MUXF7``/``MUXF8``, ``INV`` and the I/O buffers. Every net holds one bit per test
vector (a numpy bool array), so one pass evaluates all vectors. Registers are not
modelled: the layers are synthesized as combinational logic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwprune.errors import ToolchainError

CARRY_CELLS = ("CARRY4", "CARRY8")
LUT_CELLS = tuple(f"LUT{i}" for i in range(1, 7))
PASS_CELLS = ("IBUF", "OBUF", "BUFG")


@dataclass(frozen=True)
class Netlist:
    module: str
    inputs: dict  # port -> list of net ids
    outputs: dict
    cells: tuple  # (type, parameters, connections, port directions)

    @classmethod
    def load(cls, path: Path, top: str) -> "Netlist":
        data = json.loads(Path(path).read_text())
        try:
            module = data["modules"][top]
        except KeyError:
            raise ToolchainError(f"{path}: yosys wrote no module {top!r}") from None
        ins = {n: p["bits"] for n, p in module["ports"].items() if p["direction"] == "input"}
        outs = {n: p["bits"] for n, p in module["ports"].items() if p["direction"] == "output"}
        cells = tuple((c["type"], c.get("parameters", {}), c["connections"], c["port_directions"])
                      for c in module["cells"].values())
        return cls(top, ins, outs, cells)

    def cell_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, *_ in self.cells:
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))

    def evaluate(self, port_values: dict[str, list[int]]) -> dict[str, list[int]]:
        """Input port words (one int per vector) to output port words."""
        n = len(next(iter(port_values.values())))
        nets: dict = {"0": np.zeros(n, bool), "1": np.ones(n, bool), "x": np.zeros(n, bool), "z": np.zeros(n, bool)}
        for port, bits in self.inputs.items():
            words = port_values[port]
            for pos, net in enumerate(bits):
                nets[net] = np.array([(w >> pos) & 1 for w in words], dtype=bool)
        for cell in self._ordered():
            _evaluate_cell(cell, nets)
        out = {}
        for port, bits in self.outputs.items():
            words = [0] * n
            for pos, net in enumerate(bits):
                column = _net(nets, net)
                for i in np.flatnonzero(column):
                    words[i] |= 1 << pos
            out[port] = words
        return out

    def _ordered(self) -> list:
        """Cells in an order where every cell's inputs are computed before it."""
        driver: dict = {}
        for index, (_, _, conns, dirs) in enumerate(self.cells):
            for port, bits in conns.items():
                if dirs.get(port) == "output":
                    for b in bits:
                        driver[b] = index
        order, state = [], [0] * len(self.cells)  # 0 new, 1 on the stack, 2 done
        for start in range(len(self.cells)):
            if state[start]:
                continue
            stack = [(start, False)]
            while stack:
                index, expanded = stack.pop()
                if expanded:
                    state[index] = 2
                    order.append(self.cells[index])
                    continue
                if state[index]:
                    continue
                state[index] = 1
                stack.append((index, True))
                _, _, conns, dirs = self.cells[index]
                for port, bits in conns.items():
                    if dirs.get(port) != "input":
                        continue
                    for b in bits:
                        d = driver.get(b)
                        if d is None or state[d] == 2:
                            continue
                        if state[d] == 1:
                            # A carry cell may feed itself through CO -> CI of a chained
                            # sibling only via other cells; a real loop is an error.
                            raise ToolchainError(f"netlist {self.module}: combinational loop through {self.cells[d][0]}")
                        stack.append((d, False))
        return order


def _net(nets: dict, net) -> np.ndarray:
    try:
        return nets[net]
    except KeyError:
        raise ToolchainError(f"netlist: net {net} is read before any cell drives it") from None


def _evaluate_cell(cell, nets: dict) -> None:
    kind, params, conns, _ = cell
    if kind in LUT_CELLS:
        init = params["INIT"]
        table = np.array([c == "1" for c in reversed(init)], dtype=bool)
        index = np.zeros(len(nets["0"]), dtype=np.int64)
        for k in range(int(kind[3:])):
            index |= _net(nets, conns[f"I{k}"][0]).astype(np.int64) << k
        nets[conns["O"][0]] = table[index] if len(table) > 1 else np.full(index.shape, table[0])
    elif kind == "INV":
        nets[conns["O"][0]] = ~_net(nets, conns["I"][0])
    elif kind in PASS_CELLS:
        nets[conns["O"][0]] = _net(nets, conns["I"][0])
    elif kind in ("MUXF7", "MUXF8", "MUXF9"):
        s = _net(nets, conns["S"][0])
        nets[conns["O"][0]] = np.where(s, _net(nets, conns["I1"][0]), _net(nets, conns["I0"][0]))
    elif kind in CARRY_CELLS:
        width = 4 if kind == "CARRY4" else 8
        carry = _net(nets, conns["CI"][0])
        if "CYINIT" in conns:
            carry = carry | _net(nets, conns["CYINIT"][0])
        for j in range(width):
            if kind == "CARRY8" and j == 4 and params.get("CARRY_TYPE", "SINGLE_CY8") == "DUAL_CY4":
                carry = _net(nets, conns["CI_TOP"][0])
            s = _net(nets, conns["S"][j])
            di = _net(nets, conns["DI"][j])
            if conns["O"][j] not in ("x", "0", "1"):
                nets[conns["O"][j]] = s ^ carry
            carry = np.where(s, carry, di)
            if conns["CO"][j] not in ("x", "0", "1"):
                nets[conns["CO"][j]] = carry
    elif kind in ("GND", "VCC"):
        nets[conns["G" if kind == "GND" else "P"][0]] = np.full(len(nets["0"]), kind == "VCC")
    else:
        raise ToolchainError(f"netlist: cell type {kind} is not modelled (expected combinational Xilinx primitives)")
