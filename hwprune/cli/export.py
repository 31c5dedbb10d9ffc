"""``hwprune export``: model -> quantized graph + C sources + test vectors + report."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    from hwprune.pipeline import MAX_VECTORS, RANDOM_VECTORS

    p = sub.add_parser("export", help="quantize a model and lower it to C (and verify it)",
                       description="Read MODEL (a pickled torch module .pt, a Keras .keras file or architecture .json "
                                   "with --weights, or an hwprune graph folder), "
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
    p.add_argument("--weight-bits", type=int, metavar="N", help="fixed-point width of weights, 2 to 16 (default 8)")
    p.add_argument("--activation-bits", type=int, metavar="N", help="fixed-point width of activations, 2 to 16 (default 8)")
    p.add_argument("--name", metavar="NAME",
                   help="C prefix of every symbol and macro (NAME_predict, NAME_INPUT_SIZE, ...): a C identifier, "
                        "not a keyword, not starting with _ (default: the model's name, from its file name); give "
                        "each model of a firmware its own")
    p.add_argument("--format", default="auto", choices=["auto", "dense", "csr"],
                   help="weight storage of every Dense layer (auto: the smallest per layer)")
    p.add_argument("--keep-dead-neurons", action="store_true",
                   help="keep units whose weights are all zero (default: remove them, folding their constant "
                        "output into the next layer's bias)")
    p.add_argument("--target", default="stm32l4r5", help="chip the report compares sizes with (hwprune targets)")
    p.add_argument("--weights", metavar="W.h5", help="HDF5 weights of a Keras 2 architecture MODEL.json")
    p.add_argument("--backend", default="c", choices=["c", "hls4ml"],
                   help="c: C sources only; hls4ml: an hls4ml project in DIR/hls4ml/ too (C simulation checked)")
    p.add_argument("--strategy", choices=["latency", "resource", "da"],
                   help="hls4ml strategy: latency (default), resource (weights in memory) or da (distributed "
                        "arithmetic, da4ml)")
    p.add_argument("--reuse-factor", type=int, help="hls4ml reuse factor (default 1)")
    p.add_argument("--part", help="FPGA part (default xcvu13p-flga2577-2-e)")
    p.add_argument("--hls-tool", choices=["Vitis", "Vivado"], help="HLS tool the project is for (default Vitis)")
    p.add_argument("--weight-storage", choices=["auto", "dense", "compressed"],
                   help="resource strategy: weights dense, compressed (nonzeros only) or the smaller per layer")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.errors import OptionError
    from hwprune.pipeline import ExportOptions, export_model, load_array, load_model
    from hwprune.targets import get_target

    get_target(args.target)  # an unknown target fails before any work
    hls = None
    fpga = {"strategy": args.strategy, "reuse_factor": args.reuse_factor, "part": args.part, "tool": args.hls_tool,
            "storage": args.weight_storage}
    if args.backend == "hls4ml":
        from hwprune.backends.hls4ml import HlsOptions

        hls = HlsOptions(**{k: v for k, v in fpga.items() if v is not None})
    elif any(v is not None for v in fpga.values()):
        flags = {"strategy": "--strategy", "reuse_factor": "--reuse-factor", "part": "--part", "tool": "--hls-tool",
                 "storage": "--weight-storage"}
        given = [flags[k] for k, v in fpga.items() if v is not None]
        raise OptionError(f"{', '.join(given)}: FPGA options, for --backend hls4ml only")
    bits = {"weight_bits": args.weight_bits, "activation_bits": args.activation_bits}
    options = ExportOptions(**{k: v for k, v in bits.items() if v is not None}, sparsity=args.sparsity,
                            format=args.format, target=args.target, remove_dead_neurons=not args.keep_dead_neurons,
                            name=args.name)
    calibration = load_array(args.calibration, "calibration") if args.calibration else None
    model = load_model(args.model, calibration.shape[1:] if calibration is not None else None, weights=args.weights)
    if model.is_quantized and any(v is not None for v in bits.values()):
        raise OptionError(f"{args.model} is quantized already; --weight-bits and --activation-bits apply to float "
                          "models only")
    out = export_model(model, args.out, calibration, options, force=args.force, source=args.model, hls=hls)
    import json

    report = json.loads((out / "report.json").read_text())
    print(f"hwprune export: wrote {out}: {report['nonzero_weights']}/{report['total_weights']} nonzero weights, "
          f"{report['weight_bytes']} weight bytes, flash {report['flash_bytes']} B, RAM {report['ram_bytes']} B, "
          f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact'} on {report['vectors']} vectors",
          file=sys.stderr)
    return 0 if report["bit_exact"] else 1
