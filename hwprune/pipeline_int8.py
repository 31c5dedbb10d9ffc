"""Export and verification of TFLite int8 models (the int8 dialect's side of ``pipeline``).

An int8 export folder::

    DIR/graph.json, DIR/weights.npz   the int8 graph read from the file (ir.io format), without its dead
                                      channels (prune.dead_channels; export.json "dead_channels" lists them)
    DIR/model.tflite                  the original file, or for a float model quantized by hwprune
                                      (--quant tflite-int8) the file written from its int8 graph:
                                      the tflm engine's oracle runs it
    DIR/c/                            model_int8.c, hwprune_int8.h, hwprune_int8_{simd,dsp}.h (backends/c_int8.py)
    DIR/vectors.npz                   x (the inputs' real values), x_int (int8), y_int (reference)
    DIR/export.json                   {"dialect": "tflite-int8", ...}
    DIR/report.json                   what verification found
    DIR/hwprune-manifest.json         written last
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hwprune import __version__, reference
from hwprune.backends.c.options import COptions
from hwprune.backends.c_int8 import write_int8_c
from hwprune.backends.c_int8_plan import WIDE_WEIGHTS_KEY, wide_weights
from hwprune.backends.registry import ordered
from hwprune.backends.tflite_file import write_tflite
from hwprune.errors import DataError, InternalError, ModelError, OptionError, ToolchainError
from hwprune.exportdir import C_DIR, DEAD_CHANNELS_KEY, EXPORT_FILE, Export, REPORT_FILE, VECTORS_FILE, load_array
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.build import find_cc
from hwprune.harness.compare import Comparison, compare
from hwprune.harness.cross import find_cross_cc
from hwprune.harness.engines import get_engine
from hwprune.harness.host_int8 import run_host
from hwprune.harness.mcu_int8 import run_mcu, trace_mcu
from hwprune.harness.regenerate import check_code
from hwprune.harness.select import check_mcu_choice, named_engines
from hwprune.ir.graph import Graph
from hwprune.ir.int8 import is_int8_graph
from hwprune.ir.io import load_graph, save_graph
from hwprune.manifest import check
from hwprune.prune.dead_channels import check_same_outputs, remove_dead_channels
from hwprune.outputs import output_dir
from hwprune.quant.calibrate import float_forward
from hwprune.quant.tflite_int8 import quantize_tflite_int8
from hwprune.targets import DEFAULT_TARGET, Target, check_fit, export_target, get_target
from hwprune.tempdirs import temp_dir

DIALECT = "tflite-int8"
INT8_VECTORS = 32  # stored test vectors (VWW's input is 27 KB each); benchmarks run 1,000
DEFAULT_ENGINES = ("tflm", "host")


def is_int8_export(folder) -> bool:
    try:
        return json.loads((Path(folder) / EXPORT_FILE).read_text()).get("dialect") == DIALECT
    except (OSError, ValueError, AttributeError):
        return False


def random_int8(graph: Graph, count: int, seed: int) -> np.ndarray:
    """Inputs over the whole int8 range (both ends included)."""
    return np.random.default_rng(seed).integers(-128, 127, size=(count, *graph.input_shape), endpoint=True)


def dead_channel_macs(graph: Graph) -> int:
    """MACs of output channels whose weights are all zero (their output is a constant)."""
    total = 0
    for layer in graph.layers:
        if hasattr(layer, "filter_matrix"):
            dead = ~np.any(layer.filter_matrix != 0, axis=1)
            if dead.any():
                per_channel = layer.mac_count(graph.input_shape_of_layer(layer)) / layer.out_channels
                total += int(round(per_channel * int(dead.sum())))
    return total


def figures(graph: Graph) -> dict:
    return {"macs": graph.macs, "nonzero_macs": graph.nonzero_macs, "dead_channel_macs": dead_channel_macs(graph),
            "total_weights": graph.total_weights, "nonzero_weights": graph.nonzero_weights,
            "weight_bytes": graph.total_weights}


_C_ARRAY = re.compile(r"static const (u?int(8|16|32))_t \w+\[(\d+)\]")  # an alignment attribute may follow


def c_weight_bytes(source: str) -> int:
    """Bytes of the constant arrays of an int8 model's C (weights however stored, their
    indexes, biases, multipliers, shifts): what the model adds to flash besides code."""
    return sum(int(m.group(2)) // 8 * int(m.group(3)) for m in _C_ARRAY.finditer(source))


def check_options(options, backends: Sequence = (), converted: Optional[Graph] = None) -> None:
    """``converted``: the float model to quantize (``--quant tflite-int8``), which
    ``--sparsity`` prunes first; a .tflite model is exported as its weights are."""
    if converted is not None and converted.is_quantized:
        raise OptionError(f"{converted.name}: --quant tflite-int8 quantizes a float model; this one has its types "
                          "already")
    if converted is not None and options.spec is not None:
        raise OptionError("--precision and --config set ap_fixed types; --quant tflite-int8 chooses int8 scales")
    for backend, _ in ordered(backends):
        if backend.name != "c":
            raise OptionError(f"--backend {backend.name} does not take TFLite's int8 dialect (scale/zero-point "
                              "types); use the C backend")
    if options.sparsity and converted is None:
        raise OptionError("--sparsity applies to float models; a .tflite model is exported as its weights are")
    c = next((opts for opts in backends if isinstance(opts, COptions)), COptions())
    if c.format != "auto" or c.optimize != "balanced":
        given = f"--format {c.format}" if c.format != "auto" else f"--optimize {c.optimize}"
        raise OptionError(f"{given}: the int8 C stores a layer dense or as each output channel's nonzero weights "
                          "by its density; --format and --optimize apply to ap_fixed exports")


def int8_engines(meta: dict, engines: Optional[Sequence[str]] = None, target: Optional[str] = None,
                 cc: Optional[str] = None) -> tuple[list[str], Optional[Target]]:
    """The engines ``verify`` runs on an int8 export, and the Cortex-M target of ``mcu``: the
    engines named, else tflm and host, plus mcu when the export's target (or ``target``) is
    a Cortex-M the user chose (as ``harness.select.select_engines`` for ap_fixed exports)."""
    chip, chosen = export_target(meta, target)
    if engines:
        names = named_engines(engines)
    else:
        names = [*DEFAULT_ENGINES, *(["mcu"] if chip.kind == "mcu" and chosen else [])]
    check_mcu_choice(chip, names, cc)
    return names, chip if "mcu" in names else None


def mcu_int8(folder: Path, graph: Graph, x_int: np.ndarray, target: Target, cc: Optional[str] = None,
             progress: bool = False, expected: Optional[Sequence] = None) -> tuple[Comparison, dict]:
    """The folder's C built for ``target``'s core and run in the emulator: its outputs against
    the reference (``expected``: its trace on ``x_int``, when the caller has it), and the
    firmware's figures per inference."""
    if expected is None:
        expected = reference.run(graph, x_int, trace=True)
    with temp_dir("mcu-int8") as work:
        run = run_mcu(graph, Path(folder) / C_DIR, x_int, Path(work), target, cc=cc, progress=progress)
        output = [(name, v) for name, v in expected if name == graph.output]  # the graph's output tensor
        comparison = compare(output, ((graph.output, run.outputs),), "mcu")
        if not comparison.bit_exact:  # a build that traces every layer names where the firmware went wrong
            traced = trace_mcu(graph, Path(folder) / C_DIR, x_int, Path(work), target, cc)
            comparison = compare(expected, traced, "mcu")
    return comparison, {"target": target.name, "core": target.cpu, "vectors": int(len(x_int)), "cycles": run.cycles,
                        "instructions": run.instructions, "latency_us": run.cycles / target.clock_mhz,
                        "energy_uj": run.cycles * target.energy_nj_per_cycle / 1000.0,
                        "flash_bytes": run.flash_bytes, "static_ram_bytes": run.static_ram_bytes,
                        "stack_bytes": run.stack_bytes}


def verify_int8(folder: Path, graph: Graph, x_int: np.ndarray, stored: Optional[np.ndarray],
                engines: Sequence[str] = DEFAULT_ENGINES, mcu_target: Optional[Target] = None,
                cc: Optional[str] = None, named: bool = False) -> tuple[list[Comparison], list[tuple[str, str]], dict]:
    """Every engine against the reference, layer by layer (mcu: the outputs, on
    ``mcu_target``'s core); (comparisons, skipped engines, the mcu's firmware figures or {}).
    ``named``: the engines were asked for by name, so one that cannot run is an error."""
    steps = reference.run(graph, x_int, trace=True)
    expected = tuple((name, np.asarray(v, dtype=np.int64)) for name, v in steps)
    comparisons, skipped, mcu = [], [], {}
    if stored is not None:
        comparisons.append(compare(((graph.layers[-1].name, np.asarray(stored, dtype=np.int64)),), expected[-1:],
                                   "reference/stored y_int"))
    for name in engines:
        if name == "mcu":  # the int8 C on a Cortex-M core (harness.mcu_int8), not the ap_fixed firmware
            reason = mcu_reason(cc)
            if reason and named:
                raise ToolchainError(f"--engine mcu cannot run: {reason}")
            if reason:
                skipped.append(("mcu", reason))
                continue
            comparison, mcu = mcu_int8(folder, graph, x_int, mcu_target or get_target(DEFAULT_TARGET), cc,
                                       progress=True, expected=expected)
            comparisons.append(comparison)
            continue
        if name == "host":  # the int8 dialect's own C (backends/c_int8), not the ap_fixed export's
            reason = _host_reason(folder)
            if reason:
                skipped.append(("host", reason))
                continue

            with temp_dir("int8") as work:
                trace = run_host(graph, folder / C_DIR, x_int, Path(work))
            comparisons.append(compare(expected, trace, "host"))
            continue
        engine = get_engine(name)
        if engine.name in ("reference",):
            continue
        reason = engine.unavailable_reason() or (engine.skip_reason(folder) if hasattr(engine, "skip_reason") else "")
        if reason:
            skipped.append((engine.name, reason))
            continue
        run = engine.run(folder, x_int)
        comparisons.append(compare(expected, run.trace or ((graph.layers[-1].name, run.outputs),), engine.name))
    return comparisons, skipped, mcu


def mcu_reason(cc: Optional[str] = None) -> str:
    """Why the mcu engine cannot run here with the cross compiler ``cc``, or ""."""
    reason = get_engine("mcu").unavailable_reason()
    if reason or cc is None:
        return reason
    try:
        find_cross_cc(cc)
    except ToolchainError as exc:
        return str(exc)
    return ""


def _host_reason(folder: Path) -> str:
    if not (Path(folder) / C_DIR).is_dir():
        return f"{folder} holds no {C_DIR}/ folder"

    try:
        find_cc()
    except ToolchainError as exc:
        return str(exc)
    return ""


def export_int8(graph: Graph, model_path, out, options, force: bool = False, calibration=None,
                tflite_bytes: Optional[bytes] = None, extra: Optional[dict] = None,
                c_options: COptions = COptions()) -> Export:
    """Write an int8 export folder for ``graph`` read from ``model_path`` (a .tflite file).
    ``tflite_bytes``: the file to keep instead of ``model_path``'s (a float model quantized
    by hwprune, ``model_path`` its source); ``extra``: more of export.json and report.json.
    With a Cortex-M ``options.target`` the C also runs on its core in the emulator (the C
    options' ``cc``: the cross compiler): the firmware's cycles, flash and RAM in the report,
    and a model that does not fit the chip is an error (unless ``options.require_fit`` is
    off). ``c_options.compile`` off: only TFLM runs (no compiler needed)."""
    if not is_int8_graph(graph):
        raise ModelError(f"{model_path}: not an int8 model")
    target = get_target(options.target or DEFAULT_TARGET)  # an unknown target fails before any work
    target_meta = {"target": target.name, "target_given": options.target is not None,
                   **({"target_spec": asdict(target)} if options.target and (options.target.endswith(".toml")
                                                                             or "/" in options.target) else {})}
    cc = c_options.cc
    engines, mcu_target = int8_engines(target_meta, cc=cc)
    if not c_options.compile:  # --no-compile: the C is written, not built (verify builds it later)
        engines = [name for name in engines if name not in ("host", "mcu")]
    if options.name:
        graph = graph.replace(name=options.name)
    if calibration is not None:  # real-valued inputs: quantized as TFLite's QUANTIZE would
        x_int = graph.input_t.quantize(graph.check_batch(calibration, "calibration inputs"))
    else:
        x_int = random_int8(graph, INT8_VECTORS, options.seed)
    y_int = reference.run(graph, x_int)  # the model as the file holds it defines the outputs
    model = graph  # as the file holds it: the exported graph's weights may not outgrow its
    if options.remove_dead_neurons:
        graph, dead = remove_dead_channels(graph)
        check_same_outputs(graph, x_int, y_int, model_path)
        extra = {DEAD_CHANNELS_KEY: dead.to_json(), **(extra or {})}
    tflite_file = Path(model_path) / "model.tflite" if Path(model_path).is_dir() else Path(model_path)
    if tflite_bytes is None and not tflite_file.is_file():
        raise ModelError(f"{model_path}: no .tflite file to keep beside the int8 graph (expected {tflite_file})")
    out = Path(out)
    with output_dir(out, force, inputs=(model_path,)) as tmp:
        save_graph(graph, tmp)
        if tflite_bytes is None:  # an int8 export folder read again keeps its own file
            shutil.copyfile(tflite_file, tmp / "model.tflite")
        else:
            (tmp / "model.tflite").write_bytes(tflite_bytes)

        wide = wide_weights(graph, model)
        write_int8_c(graph, tmp / C_DIR, wide)
        extra = {"c_weight_bytes": c_weight_bytes((tmp / C_DIR / "model_int8.c").read_text()), WIDE_WEIGHTS_KEY: wide,
                 **(extra or {})}
        np.savez(tmp / VECTORS_FILE, x=graph.input_t.to_real(x_int), x_int=x_int.astype(np.int8),
                 y_int=y_int.astype(np.int8))
        meta = {"hwprune_version": __version__, "dialect": DIALECT, "source": str(model_path), "model": graph.name,
                "tflite": "model.tflite", **target_meta, **({"cc": cc} if cc else {}),
                "compiled": c_options.compile, **extra}
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        comparisons, skipped, mcu = verify_int8(tmp, graph, x_int, None, engines, mcu_target, cc,
                                                named=cc is not None)  # --cc asked for the firmware
        report = {**verification_report(graph, x_int, comparisons, skipped), **extra, "mcu": mcu or None}
        if mcu:
            report.update(flash_bytes=mcu["flash_bytes"], ram_bytes=mcu["static_ram_bytes"] + mcu["stack_bytes"])
            if options.require_fit:
                check_fit(report, target)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return Export(out, report, meta)


def verification_report(graph: Graph, x_int, comparisons, skipped) -> dict:
    ran = [c for c in comparisons if not c.engine.startswith("reference/")]
    return {"dialect": DIALECT, "model": graph.name, "vectors": int(len(x_int)),
            "bit_exact": all(c.bit_exact for c in comparisons) if ran else None,
            "mismatches": sum(c.mismatches for c in comparisons),
            "engines": {c.engine: {"bit_exact": c.bit_exact, "mismatches": c.mismatches, "first_layer": c.first_layer}
                        for c in comparisons},
            "skipped": dict(skipped), **figures(graph)}


def read_int8_vectors(folder: Path, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    path = folder / VECTORS_FILE
    try:
        with np.load(path, allow_pickle=False) as npz:
            x_int, y_int = npz["x_int"], npz["y_int"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable or incomplete ({type(exc).__name__}); run hwprune export again") from None
    graph.check_batch(x_int, f"{path}: x_int")
    return x_int.astype(np.int64), y_int.astype(np.int64)


def run_verify(args) -> int:
    """``hwprune verify DIR`` on an int8 export folder."""
    folder = Path(args.dir)
    check(folder)
    check_code(folder, getattr(args, "trust_export", False))  # before any engine compiles the folder's C
    graph = load_graph(folder)
    x_int, stored = read_int8_vectors(folder, graph)
    if args.inputs:
        x = graph.check_batch(load_array(args.inputs, "inputs"), f"inputs ({args.inputs})")
        x_int, stored = graph.input_t.quantize(x), None
    meta = json.loads((folder / EXPORT_FILE).read_text())
    engines, mcu_target = int8_engines(meta, args.engine, args.target, args.cc)
    comparisons, skipped, mcu = verify_int8(folder, graph, x_int, stored, engines, mcu_target,
                                            args.cc or meta.get("cc"), named=bool(args.engine))
    report = {**verification_report(graph, x_int, comparisons, skipped), "mcu": mcu or None}
    if args.json:
        print(json.dumps(report))
    else:
        for c in comparisons:
            print(c.report())
        for name, why in skipped:
            print(f"{name}: skipped ({why})")
        if mcu:
            print(mcu_line(mcu))
        print(f"{len(x_int)} vectors, {report['mismatches']} mismatching elements: "
              f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact' if report['bit_exact'] is False else 'nothing verified'}")
    if not report["bit_exact"]:
        print(f"hwprune verify: {report['mismatches']} mismatching elements; see the engine notes", file=sys.stderr)
    return 0 if report["bit_exact"] else 1


def mcu_line(m: dict) -> str:
    return (f"mcu: {m['target']} ({m['core']}): {m['cycles']:,.0f} cycles ({m['latency_us']:,.1f} us, "
            f"{m['energy_uj']:,.2f} uJ) and {m['instructions']:,.0f} instructions per inference; flash "
            f"{m['flash_bytes']:,} B, RAM {m['static_ram_bytes']:,} B static + {m['stack_bytes']:,} B stack")


def print_export(exported: Export) -> int:
    """The export command's one line on stderr; exit 1 when an engine disagreed."""
    out, report = exported.folder, exported.report
    verdict = {True: f"{' and '.join(report['engines'])} bit-exact on {report['vectors']} vectors",
               False: f"NOT bit-exact ({report['mismatches']} mismatching elements)",
               None: "not verified (" + "; ".join(report["skipped"].values()) + ")"}[report["bit_exact"]]
    dead = report.get(DEAD_CHANNELS_KEY) or {}
    removed = (f"; {dead['filters_removed']} dead filters removed (MACs {dead['macs_before']} -> {dead['macs_after']})"
               if dead.get("filters_removed") else "")
    m = report.get("mcu")
    firmware = (f"; {m['cycles']:,.0f} cycles ({m['latency_us']:,.1f} us, {m['energy_uj']:,.2f} uJ), flash "
                f"{m['flash_bytes']:,} B, RAM {m['static_ram_bytes'] + m['stack_bytes']:,} B on {m['target']}"
                if m else "")
    print(f"hwprune export: wrote {out}: int8 ({DIALECT}), {report['nonzero_weights']}/{report['total_weights']} "
          f"nonzero weights, {report['macs']} MACs ({report['nonzero_macs']} on nonzero weights){removed}; {verdict}"
          f"{firmware}", file=sys.stderr)
    return 1 if report["bit_exact"] is False else 0


def export_converted(float_graph: Graph, source: str, out, options, force: bool, calibration: np.ndarray,
                     removed_neurons: Optional[dict] = None, c_options: COptions = COptions()) -> Export:
    """``export --quant tflite-int8``: the float (optionally pruned) ``float_graph``
    quantized as TFLite's converter does (``quant.tflite_int8``), written as a ``.tflite``
    file, read back and exported; the read-back graph is what the folder holds, so the
    tflm engine, the reference and the C run the same file's model. ``calibration``: float
    inputs in the source model's layout (its first ones are the test vectors)."""
    if calibration is None:
        raise DataError("--quant tflite-int8 needs calibration inputs to choose the int8 scales: pass --calibration "
                        "X.npy")
    quantized = quantize_tflite_int8(float_graph, calibration)
    data = write_tflite(quantized)
    with temp_dir("tflite") as work:
        (Path(work) / "model.tflite").write_bytes(data)
        graph = read_tflite(Path(work) / "model.tflite", float_graph.name).graph
    x = float_graph.from_source(np.asarray(calibration, dtype=np.float64))[:INT8_VECTORS * 8]
    x_int = graph.input_t.quantize(x)
    if not np.array_equal(reference.run(graph, x_int), reference.run(quantized, x_int)):
        raise InternalError(f"{source}: the .tflite written for the int8 graph reads back as another model")
    float_out = float_forward(float_graph, float_graph.to_source(x))
    int8_out = graph.output_t.to_real(reference.run(graph, x_int))
    # how far the int8 model is from the float one on the test vectors (relative to the float outputs' range)
    fidelity = {"max_abs_error_of_range": float(np.abs(int8_out - float_out).max() / (float(np.ptp(float_out)) or 1.0))}
    if float_out.ndim == 2 and float_out.shape[1] > 1:
        fidelity["top1_agreement"] = float(np.mean(float_out.argmax(1) == int8_out.argmax(1)))
    extra = {"quant": "tflite-int8", "sparsity_requested": options.sparsity,
             "removed_neurons": removed_neurons or {}, "fidelity": fidelity}
    return export_int8(graph, source, out, options, force, x, tflite_bytes=data, extra=extra, c_options=c_options)
