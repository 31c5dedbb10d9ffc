"""nextpnr's log, read as it is written: the phase a line starts (the progress display of
``resources --place-and-route``), the routing budget of ``--route-timeout`` that stops the
router, and the placed design's figures from the log of a run so stopped (the utilisation
table and the timing analysis nextpnr prints after placement)."""

from __future__ import annotations

import re
import time
from typing import Optional

from hwprune.errors import ToolchainError

# nextpnr's log lines that start a phase, and the phase's name on a progress display
PHASES = ((re.compile(r"Info: Packing"), "packing"),
          (re.compile(r"Info: Running placer|HeAP|Creating initial analytic placement"), "placing"),
          (re.compile(r"simulated annealing placer for refinement"), "refining the placement"),
          (re.compile(r"at iteration #(\d+), type"), "placing, pass {0}"),
          (re.compile(r"at iteration #(\d+): temp"), "refining the placement, pass {0}"),
          (re.compile(r"Routing complete"), "routed; timing"),
          (re.compile(r"Info: Routing|Running router|Running main router loop"), "routing"),
          (re.compile(r"iter=(\d+) .*overused=(\d+)"), "routing, pass {0}, {1} wires overused"))


def phase_of(line: str) -> Optional[str]:
    """The place-and-route phase a line of nextpnr's log starts, or None."""
    for pattern, name in PHASES:
        m = pattern.search(line)
        if m:
            return name.format(*(f"{int(g):,}" for g in m.groups()))
    return None


class RoutingStopped(Exception):
    """nextpnr stopped by its routing budget (``--route-timeout``); ``log`` is its output so far."""

    def __init__(self, log: str, seconds: float):
        super().__init__(f"routing stopped after {seconds:.0f} s")
        self.log = log
        self.seconds = seconds


class RouteBudget:
    """Ends nextpnr ``seconds`` after its router starts (0: as soon as it starts), keeping
    the log, which holds the placed design's utilisation and timing."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lines: list[str] = []
        self.started: Optional[float] = None
        self.routed = False

    def on_line(self, line: str) -> None:
        self.lines.append(line)
        phase = phase_of(line)
        if self.started is None and phase is not None and phase.startswith("routing"):
            self.started = time.monotonic()
        if phase is not None and phase.startswith("routed"):
            self.routed = True  # the timing analysis and the report after it are not routing
        self.poll()

    def poll(self) -> None:
        if not self.routed and self.started is not None and time.monotonic() - self.started >= self.seconds:
            raise RoutingStopped("\n".join(self.lines) + "\n", time.monotonic() - self.started)


_UTILISATION = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz")


def placed_report(log: str, what: str) -> dict:
    """nextpnr's ``--report`` figures from its log of a run stopped in routing: the last
    "Device utilisation" table (cells after packing, as placed) and each clock's Fmax from
    the timing analysis after placement."""
    utilization: dict = {}
    fmax: dict = {}
    in_table = False
    for line in log.splitlines():
        if "Device utilisation:" in line:
            utilization, in_table = {}, True
            continue
        m = _UTILISATION.match(line) if in_table else None
        if m:
            utilization[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
        elif in_table and line.strip() not in ("", "Info:"):
            in_table = False
        f = _FMAX.search(line)
        if f:
            fmax[f.group(1)] = {"achieved": float(f.group(2))}
    if not utilization:
        raise ToolchainError(f"{what}: stopped in routing, and its log has no device utilisation to report")
    return {"utilization": utilization, "fmax": fmax}
