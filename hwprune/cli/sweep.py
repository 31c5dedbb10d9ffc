"""``hwprune sweep``: the cheapest pruned, quantized model that keeps its accuracy on a chip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hwprune import ranges
from hwprune.errors import OptionError
from hwprune.targets import get_target


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="search sparsity x method x schedule x bits for the cheapest model that meets an accuracy bar",
        description="Each trial prunes MODEL (a trained torch classifier), fine-tunes it on --data, quantizes it, "
                    "exports and verifies it for --target and measures the --objective; trials run as Ray tasks "
                    "(a local Ray by default, or the cluster at --address). Writes DIR/sweep.json, sweep.md, "
                    "sweep.png (accuracy against the objective, Pareto front) and the best model's export in "
                    "DIR/best/. Exit 0 when a model meets --min-accuracy, 1 when none does, 2 on bad input.")
    p.add_argument("model", metavar="MODEL.pt")
    p.add_argument("--data", required=True, metavar="TRAIN.npz", help="arrays x, y to fine-tune and calibrate on")
    p.add_argument("--test", metavar="TEST.npz",
                   help="arrays x, y to measure accuracy on (default: a stratified 20 %% of --data held out)")
    p.add_argument("--target", default="stm32l4r5", help="chip to export for (hwprune targets); default stm32l4r5")
    p.add_argument("--sparsity", default="0.5,0.7,0.9,0.95", help="comma-separated, each in [0, 1)")
    p.add_argument("--method", default="magnitude", help="comma-separated: magnitude, random, neurons (Linear rows), filters (Conv channels), nm (2:4)")
    p.add_argument("--schedule", default="oneshot", help="comma-separated: oneshot, gradual, iterative")
    p.add_argument("--bits", default="8", help="comma-separated weight widths, each 2 to 16")
    p.add_argument("--activation-bits", type=ranges.BITS, default=8, help="activation width, 2 to 16 (default 8)")
    p.add_argument("--seeds", type=ranges.int_range(1, ranges.MAX_SEEDS), default=3,
                   help=f"seeds per configuration, 1 to {ranges.MAX_SEEDS} (default 3)")
    p.add_argument("--epochs", type=ranges.int_range(1, ranges.MAX_EPOCHS), default=10,
                   help=f"fine-tuning epochs per trial, 1 to {ranges.MAX_EPOCHS} (default 10)")
    p.add_argument("--objective", default="flash", choices=("flash", "cycles", "energy", "lut"),
                   help="cost to minimize: flash (host, MCU), cycles (MCU), energy (emulated on an MCU, "
                        "else the 45 nm proxy), lut (FPGA)")
    p.add_argument("--min-accuracy", type=ranges.FRACTION, required=True, metavar="A",
                   help="the bar: mean test accuracy over seeds, a fraction in [0, 1]")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--address", metavar="HOST:PORT", help="join a running Ray cluster (default: start a local one)")
    p.add_argument("--workers", type=ranges.int_range(1, ranges.MAX_THREADS),
                   help="CPUs of the local Ray (default: all)")
    p.add_argument("--resume", action="store_true", help="finish the sweep in DIR without redoing finished trials")
    p.add_argument("--force", action="store_true", help="replace DIR if it is a sweep folder")
    p.add_argument("--trust-model", action="store_true",
                   help="unpickle any object in MODEL.pt (runs code from the file: only for files you trust); "
                        "by default only the torch.nn layers hwprune supports load")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.sweep import SweepSpec, check_objective, load_inputs, parse_list, sha256_file, sweep

    target = get_target(args.target)
    check_objective(args.objective, target.kind, target.name)
    if args.workers is not None and args.workers < 1:
        raise OptionError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.address:
        raise OptionError("--workers sizes the local Ray; a cluster at --address has its own")
    stem = "".join(c if c.isalnum() else "_" for c in Path(args.model).stem) or "model"
    spec = SweepSpec(
        model_sha256=sha256_file(args.model) if Path(args.model).is_file() else "",
        data_sha256=sha256_file(args.data) if Path(args.data).is_file() else "",
        test_sha256=sha256_file(args.test) if args.test and Path(args.test).is_file() else None,
        target=target.name,
        sparsities=parse_list(args.sparsity, float, "--sparsity"),
        methods=parse_list(args.method, str, "--method"),
        schedules=parse_list(args.schedule, str, "--schedule"),
        bits=parse_list(args.bits, int, "--bits"),
        seeds=args.seeds, objective=args.objective, min_accuracy=args.min_accuracy,
        activation_bits=args.activation_bits, epochs=args.epochs,
        name=stem if stem[0].isalpha() else f"m_{stem}",
    )
    inputs = load_inputs(Path(args.model), Path(args.data), Path(args.test) if args.test else None,
                         methods=spec.methods)
    summary = sweep(spec, inputs, args.out, address=args.address, resume=args.resume, force=args.force,
                    workers=args.workers, protect=(args.model, args.data, args.test))
    if args.json:
        print(json.dumps(summary))
    run_info = summary["run"]
    failed = summary["failed_trials"]
    print(f"hwprune sweep: {len(summary['trials'])} trials ({run_info['trials_run']} run now), "
          f"{len(summary['front'])} points on the front, {run_info['wall_seconds']} s; wrote {args.out}/sweep.md"
          + (f"; {len(failed)} trials failed: {', '.join(failed[:3])}" if failed else ""), file=sys.stderr)
    best = summary["best"]
    if best is None:
        reached = summary["best_accuracy_reached"]
        print(f"hwprune sweep: no model reaches --min-accuracy {args.min_accuracy:.2%}; the best accuracy reached is "
              f"{'none' if reached is None else f'{reached:.2%}'}", file=sys.stderr)
        return 1
    print(f"hwprune sweep: best {best['config']}: {best['objective']:.6g} {summary['objective']['unit']} at accuracy "
          f"{best['accuracy']:.2%} ± {best['accuracy_sd']:.2%}; its export is in {args.out}/best", file=sys.stderr)
    return 0
