"""``hwprune export``: model -> quantized graph + C sources + test vectors + report."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(sub) -> None:
    from hwprune.pipeline import MAX_VECTORS, RANDOM_VECTORS

    p = sub.add_parser("export", help="quantize a model, lower it to C (and to an hls4ml project with --backend hls4ml) and verify it",
                       description="Read MODEL (a torch module .pt, a torch.export program .pt2, an ONNX model "
                                   ".onnx, a Keras .keras file or architecture .json with --weights, or an hwprune "
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
    p.add_argument("--sparsity", type=float, metavar="S",
                   help="one-shot layer-wise magnitude pruning to this fraction first, 0 <= S < 1 (float models only)")
    p.add_argument("--weight-bits", type=int, metavar="N",
                   help="fixed-point width of weights, 2 to 16 (default 8; 16 with --backend hls4ml, as hls4ml's "
                        "own default type)")
    p.add_argument("--activation-bits", type=int, metavar="N",
                   help="fixed-point width of activations, 2 to 16 (default 8; 16 with --backend hls4ml)")
    p.add_argument("--name", metavar="NAME",
                   help="C prefix of every symbol and macro (NAME_predict, NAME_INPUT_SIZE, ...): a C identifier, "
                        "not a keyword, not starting with _ (default: the model's name, from its file name); give "
                        "each model of a firmware its own")
    from hwprune.backends.c.formats import OPTIMIZE, policies

    p.add_argument("--format", default="auto", choices=list(policies()),
                   help="weight storage of every weighted layer (auto: chosen per layer by --optimize)")
    p.add_argument("--optimize", default="balanced", choices=list(OPTIMIZE),
                   help="what auto chooses per layer: the smallest product of weight bytes and cycles (balanced, "
                        "the default: a format that saves bytes but runs several times slower loses), the fewest "
                        "weight bytes (size), or the fewest cycles on the target's core among formats whose weights "
                        "fit its flash (speed: measured in the Cortex-M emulator, one build per format); cycles "
                        "come from a per-format cost model fitted on the emulator unless measured")
    p.add_argument("--keep-dead-neurons", action="store_true",
                   help="keep units whose weights are all zero (default: remove them, folding their constant "
                        "output into the next layer's bias)")
    p.add_argument("--target", metavar="NAME|PATH",
                   help="chip to build for (hwprune targets, or a target .toml file): the firmware is cross-built "
                        "and emulated, flash/RAM/stack/cycles/energy measured, and a model that does not fit is an "
                        "error (default: sizes compared with stm32l4r5, no emulation); an FPGA target adds the FPGA "
                        "resource estimate to the report, and with --backend hls4ml gives the part, clock and "
                        "hls4ml defaults (flags override them)")
    p.add_argument("--cc", choices=["clang", "gcc"],
                   help="Cortex-M cross compiler (default: $HWPRUNE_MCU_CC, else clang from the ziglang package)")
    p.add_argument("--no-compile", action="store_true",
                   help="write the C sources without compiling or verifying them (no C compiler needed; run "
                        "hwprune verify DIR later)")
    p.add_argument("--trust-model", action="store_true",
                   help="unpickle a .pt model even if loading runs code from it (only for files you trust)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR if it is an export folder hwprune wrote (never another folder)")
    p.add_argument("--weights", metavar="W.h5", help="HDF5 weights of a Keras 2 architecture MODEL.json")
    p.add_argument("--backend", default="c", choices=["c", "hls4ml", "rtl"],
                   help="c: C sources only; hls4ml: an hls4ml project in DIR/hls4ml/ too (C simulation checked); "
                        "rtl: pipelined Verilog in DIR/rtl/ too (da4ml; simulated with verilator when installed)")
    p.add_argument("--clock-mhz", type=float, metavar="MHZ",
                   help="--backend rtl: the clock the pipeline is cut for (default: the FPGA --target's clock, else 200)")
    p.add_argument("--strategy", choices=["latency", "resource", "da"],
                   help="hls4ml strategy: latency (default), resource (weights in memory) or da (distributed "
                        "arithmetic, da4ml)")
    p.add_argument("--reuse-factor", type=int, help="hls4ml reuse factor, >= 1 (default 1)")
    p.add_argument("--part", help="FPGA part (default: the --target's part, else xcvu13p-flga2577-2-e)")
    p.add_argument("--io-type", choices=["parallel", "stream"],
                   help="hls4ml I/O: parallel (arrays, the default) or stream (hls::stream between layers)")
    p.add_argument("--hls-tool", choices=["Vitis", "Vivado"], help="HLS tool the project is for (default Vitis)")
    p.add_argument("--weight-storage", choices=["auto", "dense", "compressed"],
                   help="resource strategy: weights dense, compressed (nonzeros only) or the smaller per layer")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.errors import OptionError
    from hwprune.pipeline import ExportOptions, export_model, load_array, load_model
    from hwprune.targets import get_target

    target = get_target(args.target) if args.target else None  # an unknown target fails before any work
    hls = None
    fpga = {"strategy": args.strategy, "reuse_factor": args.reuse_factor, "part": args.part, "tool": args.hls_tool,
            "storage": args.weight_storage, "io_type": args.io_type}
    if args.backend == "hls4ml":
        from hwprune.backends.hls4ml.target import hls_options

        hls = hls_options(target, **fpga)  # the flags over the FPGA target's part, clock and defaults
    elif any(v is not None for v in fpga.values()):
        flags = {"strategy": "--strategy", "reuse_factor": "--reuse-factor", "part": "--part", "tool": "--hls-tool",
                 "storage": "--weight-storage", "io_type": "--io-type"}
        given = [flags[k] for k, v in fpga.items() if v is not None]
        raise OptionError(f"{', '.join(given)}: FPGA options, for --backend hls4ml only")
    rtl = _rtl_options(args, target)
    bits = {"weight_bits": args.weight_bits, "activation_bits": args.activation_bits}
    options = ExportOptions(**{k: v for k, v in bits.items() if v is not None}, sparsity=args.sparsity,
                            format=args.format, optimize=args.optimize, target=args.target, cc=args.cc,
                            remove_dead_neurons=not args.keep_dead_neurons, name=args.name,
                            compile=not args.no_compile)
    from hwprune.outputs import check_target

    inputs = (args.model, args.calibration)
    check_target(Path(args.out), args.force, inputs)  # a refused --out fails before any work
    if options.compile:
        from hwprune.harness.build import find_cc

        find_cc()
    calibration = load_array(args.calibration, "calibration") if args.calibration else None
    model = load_model(args.model, calibration.shape[1:] if calibration is not None else None,
                       trust_model=args.trust_model, weights=args.weights)
    if model.is_quantized and any(v is not None for v in bits.values()):
        raise OptionError(f"{args.model} is quantized already; --weight-bits and --activation-bits apply to float "
                          "models only")
    out = export_model(model, args.out, calibration, options, force=args.force, source=args.model,
                       calibration_name=f"calibration inputs ({args.calibration})" if args.calibration
                       else "calibration inputs", hls=hls, rtl=rtl)
    import json

    from hwprune import fidelity

    report = json.loads((out / "report.json").read_text())
    if report["bit_exact"] is None:
        verdict, sizes = "not compiled or verified (--no-compile)", ""
    else:
        verdict = f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact'} on {report['vectors']} vectors"
        sizes = f"flash {report['flash_bytes']} B, RAM {report['ram_bytes']} B, "
    fid = report.get("fidelity")
    agreement = ""
    if fid and fid.get("top1_agreement") is not None:
        agreement = f", top-1 agreement with the float model {fid['top1_agreement']:.1%}"
    print(f"hwprune export: wrote {out}: {report['nonzero_weights']}/{report['total_weights']} nonzero weights, "
          f"{report['weight_bytes']} weight bytes, {sizes}{verdict}{agreement}"
          + (f", {report['cycles']:.0f} cycles ({report['latency_us']:.1f} us, {report['energy_uj']:.3f} uJ) on "
             f"{report['mcu']['target']}" if report.get("mcu") else "")
          + (f"; hls4ml project for {report['hls4ml']['options']['part']}" if report.get("hls4ml") else "")
          + (f"; Verilog in {out / 'rtl'}" if args.backend == "rtl" else ""),
          file=sys.stderr)
    for warning in fidelity.warnings(fid) + list((report.get("fpga") or {}).get("warnings", [])):
        print(f"hwprune export: warning: {warning}", file=sys.stderr)
    return 1 if report["bit_exact"] is False else 0


def _rtl_options(args, target):
    """``--backend rtl``'s options (None for the other backends); da4ml is checked here,
    before any work."""
    from hwprune.errors import OptionError

    if args.backend != "rtl":
        if args.clock_mhz is not None:
            raise OptionError("--clock-mhz: the clock of --backend rtl's pipeline, for --backend rtl only")
        return None
    from hwprune.backends.rtl import RtlOptions
    from hwprune.fpga.da import require_da4ml

    require_da4ml()
    clock = args.clock_mhz or (target.clock_mhz if target is not None and target.kind == "fpga" else None)
    return RtlOptions(clock_mhz=clock) if clock else RtlOptions()
