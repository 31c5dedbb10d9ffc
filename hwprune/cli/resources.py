"""``hwprune resources``: FPGA resources of an export folder before synthesis, optionally
checked against yosys netlists that must compute the model."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from hwprune import ranges
from hwprune.errors import DataError, ModelError, OptionError
from hwprune.hls4ml_options import pick_strategy
from hwprune.manifest import MANIFEST_FILE, replace_files
from hwprune.outputs import check_target, output_file
from hwprune.tempdirs import temp_dir


def add_parser(sub) -> None:
    from hwprune.fpga.estimate import STRATEGIES

    p = sub.add_parser("resources", help="estimate FPGA DSP/LUT/FF/BRAM, latency and II (optionally synthesize)",
                       description="Per-layer and total FPGA resources from the quantized graph of an export "
                                   "folder (rules: docs/fpga_resources.md). With --synthesize, the layers are "
                                   "written as distributed-arithmetic RTL (da4ml), mapped with yosys synth_xilinx, "
                                   "and each netlist is checked against the integer reference on the test vectors.")
    p.add_argument("dir", metavar="DIR", help="an export folder (or any folder with graph.json + weights.npz)")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="hls4ml strategy: latency, resource, or da (distributed arithmetic); default: the "
                        "export's (an hls4ml export), else the part's target file default, else latency")
    p.add_argument("--reuse-factor", type=ranges.REUSE_FACTOR, metavar="R",
                   help="multiplications per multiplier (II = R); 1 = fully parallel (the only choice for da); "
                        "default: the export's, else the part's target file default (for its own strategy), else 1")
    p.add_argument("--part", metavar="PART",
                   help="FPGA part to compare with (hwprune targets; e.g. xcvu9p, xc7z020, xc7a35t); "
                        "default: the export's target when it is an FPGA")
    p.add_argument("--synthesize", action="store_true",
                   help="also synthesize each layer with da4ml + yosys and check its netlist bit for bit")
    p.add_argument("--sweep-sparsity", action="store_true",
                   help="estimate the model pruned to 0-95 %% (magnitude, per layer) and plot LUTs and DSPs")
    p.add_argument("--plot", metavar="PNG", help="where --sweep-sparsity writes its plot (default DIR/resources_sweep.png)")
    p.add_argument("--force", action="store_true", help="replace the --sweep-sparsity plot if it exists")
    p.add_argument("--place-and-route", metavar="PART",
                   help="synthesize the export's RTL (export --backend rtl) with yosys and place and route it with "
                        "nextpnr on a Lattice or Gowin PART (lfe5u85f, ice40up5k, gw1nr9): LUTs, FFs, DSPs, BRAM, "
                        "Fmax, latency, beside the estimate; a design that does not fit is exit 1 "
                        "(needs pip install 'hwprune[fpga]')")
    p.add_argument("--route-timeout", type=ranges.float_range(0, 7 * 24 * 3600, what="seconds"), metavar="S",
                   help="with --place-and-route: stop nextpnr's router after S seconds of routing and report the "
                        "placed design (LUTs, FFs, and nextpnr's Fmax estimate after placement, marked not routed); "
                        "0 places only. A design that fills a large part can take hours to route")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.fpga import estimate, fit
    from hwprune.pipeline import load_model

    directory = Path(args.dir)
    target = fit.fpga_target(args.part) if args.part else None  # an unknown part fails before any work
    if args.route_timeout is not None and not args.place_and_route:
        raise OptionError("--route-timeout needs --place-and-route")
    pnr_target = _pnr_target(args.place_and_route, directory, args.route_timeout) if args.place_and_route else None
    graph = load_model(directory)
    target = target or _export_fpga_target(directory)

    # the flags, over the export's hls4ml options, over the target file's defaults (as export does)
    meta = _export_meta(directory)
    strategy, reuse = pick_strategy(args.strategy, args.reuse_factor, *fit.export_strategy(meta, target))
    # a flag on the command line is for every layer; else the export's per-layer settings stand
    layers = () if (args.strategy or args.reuse_factor) else fit.export_layers(meta)
    options = fit.options_for(target, strategy, reuse, layers)
    if args.plot and not args.sweep_sparsity:
        raise OptionError("--plot needs --sweep-sparsity")
    if args.sweep_sparsity:  # checked before the sweep: matplotlib picks the format by the suffix
        _check_plot(args, directory)
    est = estimate(graph, options)
    result = est.to_dict()
    messages = []
    if target is not None:
        result["part"] = fit.fit(est, target)
        messages += fit.warnings(result["part"])
    if args.synthesize:
        from hwprune.fpga.synth import synthesize_graph
        from tqdm import tqdm

        x_int = _test_vectors(directory)
        family = "xc7" if options.family == "7series" else "xcup"
        n = sum(1 for l in graph.layers if _traceable(l))
        # disable=None: a bar on a terminal, nothing in pipes and CI logs.
        with tqdm(total=n, desc="yosys", unit="layer", file=sys.stderr, disable=None) as bar:
            rows = synthesize_graph(graph, x_int, family, progress=lambda name: bar.update(1))
        result["synthesized"] = {"tool": "yosys synth_xilinx -family " + family, "vectors": int(len(x_int)),
                                 "bit_exact": all(r.bit_exact for r in rows),
                                 "lut": sum(r.lut for r in rows), "carry": sum(r.carry for r in rows),
                                 "ff": sum(r.ff for r in rows), "layers": [r.to_dict() for r in rows],
                                 "not_synthesized": [l.name for l in graph.layers
                                                     if not _traceable(l) and l.kind not in ("flatten", "softmax")]}
    if pnr_target is not None:
        result["place_and_route"] = _place_and_route(directory, graph, pnr_target, args.route_timeout)
    if args.sweep_sparsity:
        rows = fit.sweep_sparsity(graph, options)
        title = f"{graph.name}: {options.strategy}, reuse {options.reuse_factor}"

        plot = Path(args.plot) if args.plot else directory / "resources_sweep.png"

        if args.plot or not (directory / MANIFEST_FILE).is_file():
            with temp_dir("plot") as staged, output_file(plot, force=True) as tmp:  # checked above, with --force
                fit.plot_sweep(rows, staged / plot.name, title, target)  # the name's suffix picks the format
                shutil.copyfile(staged / plot.name, tmp)
        else:  # into the export, listed in its manifest: the folder stays complete and --force may replace it
            with temp_dir("plot") as staged:
                fit.plot_sweep(rows, staged / plot.name, title, target)
                replace_files(directory, staged)
        result["sparsity_sweep"] = {"plot": str(plot), "rows": rows}
    for message in messages:
        print(f"hwprune resources: warning: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(render_text(result))
    return 0


def _check_plot(args, directory: Path) -> None:
    """The plot follows --force like every output; it never lands inside an export folder
    (its files are listed in its manifest; the default plot joins that list) nor inside
    DIR."""
    if not args.plot:
        default = directory / "resources_sweep.png"
        if default.exists() and not args.force:
            raise OptionError(f"{default} exists already; pass --force to replace it")
        return
    plot = Path(args.plot)
    if plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise OptionError(f"--plot {args.plot}: name a .png, .svg or .pdf file")
    for parent in plot.resolve().parents:
        if (parent / MANIFEST_FILE).is_file():
            raise OptionError(f"--plot {args.plot}: inside the export folder {parent}, whose files hwprune "
                              "never overwrites; name a file outside it (or drop --plot to add the plot to DIR)")
    check_target(plot, args.force, inputs=(directory,), folder=False)


def _pnr_target(name: str, directory: Path, route_timeout=None):
    """The part, checked with its tools and the export's RTL before any work."""
    from hwprune.fpga import fit, pnr

    target = fit.fpga_target(name)
    pnr.tools(target)  # an AMD part, or a missing tool: one line, exit 2
    pnr.check_route_timeout(target, route_timeout)
    if not (directory / "rtl" / "rtl.json").is_file():
        raise ModelError(f"{directory}: no RTL to place and route; export with --backend rtl")
    import hwprune.backends.builtin  # noqa: F401 (check_export regenerates the code of every registered backend)
    from hwprune.harness.regenerate import check_export

    check_export(directory)  # the Verilog the tools read is what hwprune writes from the graph
    return target


def _place_and_route(directory: Path, graph, target, route_timeout=None) -> dict:
    """nextpnr's figures beside the DA estimate of the same graph (the logic the RTL holds)."""
    from tqdm import tqdm

    from hwprune.fpga import pnr
    from hwprune.fpga.estimate import Options, estimate

    # the tools' phases on one status line with the time spent (shown on a terminal only)
    with tqdm(total=None, bar_format="{desc} [{elapsed}]", file=sys.stderr, disable=None, leave=False) as status:
        routed = pnr.place_and_route(directory / "rtl", target, progress=status.set_description_str,
                                     route_timeout=route_timeout)
    est = estimate(graph, Options(strategy="da", family=target.family, clock_mhz=routed["clock_target_mhz"]))
    routed["estimate"] = {"lut": est.lut, "ff": est.ff, "dsp": est.dsp, "latency_cycles": est.latency_cycles,
                          "method": "distributed arithmetic (da4ml), per layer"}
    # the placed LUTs include the cells nextpnr's packer adds (ECP5 carry feed-in/out; Gowin
    # carry-in and pad ALUs, pass-through LUTs); the logic's LUT4s do not
    logic_est = est.lut - sum(l.products.get("packer_luts", 0) for l in est.layers)
    routed["estimate"]["lut_logic"] = logic_est
    routed["lut_error"] = routed["lut"] / est.lut - 1 if est.lut else None
    routed["lut_logic_error"] = routed["lut_logic"] / logic_est - 1 if logic_est else None
    # the serial wrapper's shift registers are not the model's: compared without them
    routed["ff_error"] = (routed["ff"] - routed["wrapper_ff"]) / est.ff - 1 if est.ff else None
    return routed


def _traceable(layer) -> bool:
    from hwprune.fpga import da

    return da.supports(layer)


def _export_meta(directory: Path) -> dict:
    from hwprune.exportdir import EXPORT_FILE

    try:
        meta = json.loads((directory / EXPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # a bare graph folder: no export options
    return meta if isinstance(meta, dict) else {}


def _export_fpga_target(directory: Path):
    from hwprune.targets import export_target

    meta = _export_meta(directory)
    if not meta.get("target"):
        return None
    target, _ = export_target(meta)  # a target given as a .toml path is stored in the export
    return target if target.kind == "fpga" else None


def _test_vectors(directory: Path):
    import numpy as np

    from hwprune.exportdir import VECTORS_FILE

    path = directory / VECTORS_FILE
    if not path.is_file():
        raise DataError(f"{directory}: --synthesize checks the netlists on the test vectors, and {VECTORS_FILE} is missing")
    with np.load(path, allow_pickle=False) as vectors:
        return vectors["x_int"]


def render_text(result: dict) -> str:
    lines = [f"{result['model']}: strategy {result['strategy']}, reuse {result['reuse_factor']}, "
             f"{result['family']} at {result['clock_mhz']:g} MHz",
             f"{'layer':<16} {'kind':<10} {'DSP':>6} {'LUT':>8} {'FF':>8} {'BRAM18':>6} {'cycles':>7} {'II':>6}  how"]
    for r in result["layers"]:
        lines.append(f"{r['name']:<16} {r['kind']:<10} {r['dsp']:>6} {r['lut']:>8} {r['ff']:>8} {r['bram_18k']:>6} "
                     f"{r['latency_cycles']:>7} {r['ii']:>6}  {r['method']}")
    lines.append(f"{'total':<27} {result['dsp']:>6} {result['lut']:>8} {result['ff']:>8} {result['bram_18k']:>6} "
                 f"{result['latency_cycles']:>7} {result['ii']:>6}  ({result['bram_36k']} BRAM36, "
                 f"{result['latency_ns']:.0f} ns)")
    part = result.get("part")
    if part:
        used = ", ".join(f"{k.upper().replace('_36K', '36')} {v['used']:,}/{v['available']:,} "
                         f"({v['fraction'] * 100:.1f} %)" for k, v in part["resources"].items())
        number = f" ({part['part_number']})" if part.get("part_number") else ""
        lines.append(f"part {part['name']}{number}: {used}: " + ("fits" if part["fits"] else "DOES NOT FIT"))
    syn = result.get("synthesized")
    if syn:
        lines.append(f"synthesized ({syn['tool']}), {syn['vectors']} test vectors, every netlist equal to the reference:")
        for r in syn["layers"]:
            lines.append(f"  {r['name']:<16} LUT {r['lut']:>7} (estimate {r['estimate_lut']}, "
                         f"{r['estimate_lut'] / max(r['lut'], 1):.2f}x)  CARRY {r['carry']:>5}  FF {r['ff']:>5}")
        if syn["not_synthesized"]:
            lines.append(f"  not synthesized (no DA tracer for their kind): {', '.join(syn['not_synthesized'])}")
    pnr = result.get("place_and_route")
    if pnr:
        lines += render_pnr(pnr)
    sweep = result.get("sparsity_sweep")
    if sweep:
        lines.append(f"sparsity sweep (plot: {sweep['plot']}):")
        for r in sweep["rows"]:
            lines.append(f"  {r['sparsity'] * 100:>4.0f} %  nonzero {r['nonzero_weights']:>7}  DSP {r['dsp']:>6}  "
                         f"LUT {r['lut']:>8}  FF {r['ff']:>7}")
    return "\n".join(lines)


def render_pnr(r: dict) -> list[str]:
    est = r["estimate"]

    def error(key):
        return "" if r.get(key) is None else f" ({r[key] * 100:+.0f} % against the estimate)"

    routed = r.get("routed", True)
    if routed:
        fmax = f"{r['fmax_mhz']:.1f} MHz" if r["fmax_mhz"] else "no clock path"
        met = "met" if r["meets_clock"] else "NOT met"
    else:  # stopped by --route-timeout: nextpnr's estimate after placement
        fmax = (f"{r['fmax_mhz_placed']:.1f} MHz estimated after placement" if r.get("fmax_mhz_placed")
                else "no clock path")
        met = "NOT routed: no routed Fmax"
    ns = f", {r['latency_ns_at_fmax']:.0f} ns at Fmax" if r["latency_ns_at_fmax"] else ""
    done = ("placed and routed" if routed else
            f"placed (NOT routed: routing stopped after {r['route_stopped_after_s']:.0f} s, --route-timeout)")
    lines = [f"{done} on {r['part']} ({r['device']}) with {r['tools']['yosys']} + {r['tools']['nextpnr']}"
             + (" out of context" if r["out_of_context"] else f", ports behind a serial wrapper ({r['wrapper_ff']} FF)")
             + f": synthesis {r['synthesis']['seconds']:.0f} s, place-and-route {r['place_and_route']['seconds']:.0f} s",
             f"  LUT {r['lut']:,} placed{error('lut_error')}; LUT4 of the logic {r['lut_logic']:,}"
             f"{error('lut_logic_error')}; estimate {est['lut']:,}"
             + (f" ({est['lut_logic']:,} without the cells nextpnr's packer adds)" if est.get("lut_logic", est["lut"]) != est["lut"] else ""),
             f"  FF {r['ff']:,}{error('ff_error')}; estimate {est['ff']:,}  DSP {r['dsp']}  BRAM {r['bram']}",
             f"  Fmax {fmax} against {r['clock_target_mhz']:g} MHz ({met}); "
             f"latency {r['latency_cycles']} cycles{ns}; fits"]
    if "xilinx" in r:
        x = r["xilinx"]
        lines.append(f"  yosys synth_xilinx (7 series): {x['lut6']:,} LUT6, {x['carry4']:,} CARRY4, {x['ff']:,} FF")
    return lines
