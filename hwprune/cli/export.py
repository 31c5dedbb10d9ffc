"""``hwprune export``: model -> quantized graph + C sources + test vectors + report."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hwprune.backends.builtin  # noqa: F401 (--backend's choices are the registered backends)
from hwprune import ranges
from hwprune.backends.c.options import COptions
from hwprune.hls4ml_options import HlsOptions
from hwprune.backends.registry import BACKENDS, add_backend_arguments, options_from_args
from hwprune.errors import OptionError, ToolchainError
from hwprune.harness.build import find_cc
from hwprune.outputs import check_target
from hwprune.targets import get_target


def add_parser(sub) -> None:
    from hwprune.pipeline import MAX_VECTORS, RANDOM_VECTORS

    p = sub.add_parser("export", help="quantize a model, lower it to C (and to an hls4ml project with --backend hls4ml) and verify it",
                       description="Read MODEL (a torch module .pt, a torch.export program .pt2, an ONNX model "
                                   ".onnx, a Keras .keras file or whole-model .h5 or architecture .json with --weights, an int8 TFLite .tflite, or an hwprune "
                                   "graph or export folder), "
                                   "optionally prune it, quantize it to fixed point and write C sources, "
                                   "test vectors and a report to DIR.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist unless --force)")
    p.add_argument("--calibration", metavar="X.npy",
                   help="float inputs (N, *input_shape); the first "
                        f"{MAX_VECTORS} are also the test vectors. Required for a float model (a .pt file or a float "
                        "graph): they choose its fixed-point ranges. Optional for a quantized graph or export folder: "
                        f"without it the folder's stored test vectors are used, else {RANDOM_VECTORS} random inputs "
                        "over the whole input type")
    p.add_argument("--sparsity", type=ranges.SPARSITY, metavar="S",
                   help="one-shot layer-wise magnitude pruning to this fraction first, 0 <= S < 1 (float models only)")
    p.add_argument("--quant", choices=["ap_fixed", "tflite-int8"],
                   help="numeric scheme of a float model: ap_fixed (the default: power-of-two fixed-point types, "
                        "as hls4ml) or tflite-int8 (TFLite's full-integer scheme: per-tensor int8 activations with "
                        "a scale and zero point from the calibration data's min and max, per-channel symmetric int8 "
                        "weights, int32 biases, fused ReLU/ReLU6; written as DIR/model.tflite too, so that "
                        "verify --engine tflm runs TFLite Micro on it; docs/tflite.md)")
    p.add_argument("--weight-bits", type=ranges.BITS, metavar="N",
                   help="fixed-point width of weights, 2 to 16 (default 8; 16 with --backend hls4ml, as hls4ml's "
                        "own default type)")
    p.add_argument("--activation-bits", type=ranges.BITS, metavar="N",
                   help="fixed-point width of activations, 2 to 16 (default 8; 16 with --backend hls4ml)")
    p.add_argument("--precision", metavar="TYPE",
                   help="one type for every tensor (input, weights, biases, accumulators, results), as hls4ml "
                        "spells it: 'fixed<16,6>', 'ufixed<8,0>', 'fixed<16,6,RND,SAT>', 'ap_fixed<16,6,AP_RND,AP_SAT>' "
                        "(default rounding TRN and overflow WRAP, as ap_fixed); the accumulator gets it too, as hls4ml "
                        "does with a model-wide precision")
    p.add_argument("--config", metavar="FILE",
                   help="per-layer types, reuse factors and strategies in the shape of hls4ml's hls_config (Model: "
                        "defaults, LayerName: entries; YAML, JSON or TOML); a type not given, or 'auto', is "
                        "calibrated (docs/precision.md)")
    p.add_argument("--write-config", metavar="FILE",
                   help="also write the configuration the export used (every type, reuse factor and strategy) to FILE "
                        "(.yaml or .json), to edit and export again with --config")
    p.add_argument("--name", metavar="NAME",
                   help="C prefix of every symbol and macro (NAME_predict, NAME_INPUT_SIZE, ...): a C identifier, "
                        "not a keyword, not starting with _ (default: the model's name, from its file name); give "
                        "each model of a firmware its own")
    p.add_argument("--keep-dead-neurons", action="store_true",
                   help="keep units and channels whose weights are all zero or that nothing reads (default: "
                        "remove them, folding their constant output exactly into every reader's bias, in the float "
                        "model and again in the quantized graph, ap_fixed and int8 alike)")
    p.add_argument("--target", metavar="NAME|PATH",
                   help="chip to build for (hwprune targets, or a target .toml file): the firmware is cross-built "
                        "and emulated, flash/RAM/stack/cycles/energy measured, and a model that does not fit is an "
                        "error (default: sizes compared with stm32l4r5, no emulation); an FPGA target adds the FPGA "
                        "resource estimate to the report, and with --backend hls4ml gives the part, clock and "
                        "hls4ml defaults (flags override them)")
    p.add_argument("--trust-model", action="store_true",
                   help="unpickle a .pt or .pt2 model even if loading runs code from it (only for files you trust)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR if it is an export folder hwprune wrote (never another folder)")
    p.add_argument("--task", choices=["classification", "regression"],
                   help="how the float model is compared with the integer one: top-1 agreement (classification, the "
                        "default for a model ending in Softmax or LogSoftmax) or error relative to the output range "
                        "and SQNR (regression, the default otherwise)")
    p.add_argument("--weights", metavar="W.h5", help="HDF5 weights of a Keras 2 architecture MODEL.json")
    p.add_argument("--output", action="append", metavar="TENSOR",
                   help="ONNX: cut the graph at this tensor (repeatable) instead of the file's outputs, e.g. the "
                        "logits of a training graph whose output is its accuracy; only the nodes it needs are kept")
    p.add_argument("--backend", default="c", choices=list(BACKENDS),
                   help="; ".join(f"{name}: {backend.description}" for name, backend in BACKENDS.items()))
    add_backend_arguments(p)  # each backend's own flags (C: --format, --optimize, --cc, --no-compile; ...)
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.pipeline import ExportOptions, export_model, load_model
    from hwprune.exportdir import load_array

    target = get_target(args.target) if args.target else None  # an unknown target fails before any work
    spec = _precision_spec(args)
    backends = options_from_args(args, target, spec, args.backend)  # C always, and the one --backend names
    c_options = next(b for b in backends if isinstance(b, COptions))
    hls = next((b for b in backends if isinstance(b, HlsOptions)), None)
    bits = {"weight_bits": args.weight_bits, "activation_bits": args.activation_bits}
    options = ExportOptions(**{k: v for k, v in bits.items() if v is not None}, sparsity=args.sparsity,
                            target=args.target, remove_dead_neurons=not args.keep_dead_neurons, name=args.name,
                            task=args.task, spec=spec, quant=args.quant or "ap_fixed")
    if args.quant == "tflite-int8" and any(v is not None for v in bits.values()):
        raise OptionError("--weight-bits and --activation-bits set ap_fixed widths; --quant tflite-int8 is 8 bits")

    inputs = (args.model, args.calibration, args.config)
    check_target(Path(args.out), args.force, inputs)  # a refused --out fails before any work
    if args.write_config:
        from hwprune.quant.precision import config_text

        config_text({}, args.write_config)  # checks the suffix
        if Path(args.write_config).resolve() in {Path(p).resolve() for p in inputs if p}:
            raise OptionError(f"--write-config {args.write_config}: that is an input of this export")
        check_target(Path(args.write_config), True, inputs, folder=False)
    if c_options.compile:
        find_cc()
        if target is not None and target.kind == "mcu":
            # A Cortex-M --target asks for the firmware to be cross-built and emulated (with
            # --cc, $HWPRUNE_MCU_CC or clang): it runs, or nothing is written; never a host
            # figure in place of the firmware's.
            from hwprune.harness.mcu import McuEngine

            reason = McuEngine(target=target, cc=args.cc).unavailable_reason()
            if reason:
                asked = f"--cc {args.cc}" if args.cc else f"--target {args.target}"
                raise ToolchainError(f"{asked}: the firmware cannot be built and emulated: {reason} (or export with "
                                     "--no-compile)")
    calibration = load_array(args.calibration, "calibration") if args.calibration else None
    model = load_model(args.model, calibration.shape[1:] if calibration is not None else None,
                       trust_model=args.trust_model, weights=args.weights, outputs=args.output)
    if model.is_quantized and (any(v is not None for v in bits.values()) or spec is not None):
        raise OptionError(f"{args.model} is quantized already; --weight-bits, --activation-bits, --precision and "
                          "--config apply to float models only")
    from hwprune.ir.int8 import is_int8_graph

    if is_int8_graph(model) and args.quant == "ap_fixed":
        raise OptionError(f"--quant ap_fixed: {args.model} is an int8 TFLite model; it is exported in its own scheme")
    if is_int8_graph(model) or args.quant == "tflite-int8":  # exported in TFLite's int8 dialect
        from hwprune.pipeline_int8 import print_export

        return print_export(export_model(model, args.out, calibration, options, force=args.force, source=args.model,
                                         backends=backends))
    exported = export_model(model, args.out, calibration, options, force=args.force, source=args.model,
                            calibration_name=f"calibration inputs ({args.calibration})" if args.calibration
                            else "calibration inputs", backends=backends)
    from hwprune import fidelity

    out, report, meta = exported.folder, exported.report, exported.meta
    if report["bit_exact"] is None:
        verdict, sizes = "not compiled or verified (--no-compile)", ""
    else:
        verdict = f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact'} on {report['vectors']} vectors"
        sizes = f"flash {report['flash_bytes']} B, RAM {report['ram_bytes']} B, "
    fid = report.get("fidelity")
    agreement = f", {fidelity.summary(fid)}" if fidelity.summary(fid) else ""
    dead = report.get("dead_channels") or {}
    print(f"hwprune export: wrote {out}: {report['nonzero_weights']}/{report['total_weights']} nonzero weights, "
          f"{report['weight_bytes']} weight bytes, {sizes}{verdict}{agreement}"
          + (f", {report['cycles']:.0f} cycles ({report['latency_us']:.1f} us, {report['energy_uj']:.3f} uJ) on "
             f"{report['mcu']['target']}" if report.get("mcu") else "")
          + (f"; hls4ml project for {report['hls4ml']['options']['part']}" if report.get("hls4ml") else "")
          + (f"; Verilog in {out / 'rtl'}" if args.backend == "rtl" else "")
          + (f"; {dead['filters_removed']} dead filters removed (MACs {dead['macs_before']} -> {dead['macs_after']})"
             if dead.get("filters_removed") else ""),
          file=sys.stderr)
    for warning in ((meta.get("precision") or {}).get("warnings", []) + fidelity.warnings(fid)
                    + list((report.get("fpga") or {}).get("warnings", []))):
        print(f"hwprune export: warning: {warning}", file=sys.stderr)
    if args.write_config:
        _write_config(out, args.write_config, hls)
    return 1 if report["bit_exact"] is False else 0


def _precision_spec(args):
    """The types the user gave (--precision or --config), checked before any work; None: calibrate all."""
    from hwprune.quant.precision import PrecisionSpec, read_config

    if args.precision is not None and args.config is not None:
        raise OptionError("--precision and --config: give one (a configuration's Model: Precision is the model-wide type)")
    if args.precision is not None:
        if args.weight_bits is not None or args.activation_bits is not None:
            raise OptionError("--precision sets every type; it cannot be combined with --weight-bits or --activation-bits")
        return PrecisionSpec.uniform(args.precision)
    return read_config(args.config) if args.config is not None else None


def _write_config(out: Path, path: str, hls) -> None:
    """The configuration the export in ``out`` used, to ``path`` (written whole, then renamed)."""
    from hwprune.ir.io import load_graph
    from hwprune.quant.precision import chosen_config, config_text

    graph = load_graph(out)
    if hls is None:
        config = chosen_config(graph)
    else:
        config = chosen_config(graph, hls.strategy, hls.reuse_factor,
                               {n: s for n, s, _ in hls.layers if s is not None},
                               {n: r for n, _, r in hls.layers if r is not None})
    target = Path(path)
    staged = target.with_name(f".{target.name}.hwprune{os.getpid()}.tmp")
    staged.write_text(config_text(config, target))
    staged.replace(target)
    print(f"hwprune export: wrote the configuration to {target}", file=sys.stderr)
