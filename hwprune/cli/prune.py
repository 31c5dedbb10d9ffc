"""``hwprune prune``: prune a model and fine-tune it on an .npz training set.

A torch chain (``nn.Sequential``, or a module whose forward is one) saved as ``.pt`` with an
``--out`` ending in ``.pt`` is pruned as a torch module and saved as a plain
``nn.Sequential``. Anything else ``export`` reads (a torch module with branches, a ``.pt2``
program, ONNX, Keras, an hwprune graph folder) is translated into the graph IR and trained
through the graph's torch twin (``frontends.torch_twin``); the result is an hwprune graph
folder (``--out`` without a suffix) that ``export`` reads. On a graph, ``--method filters``
and ``neurons`` remove units physically, tied channels together (``prune.channels``).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from hwprune import ranges
from hwprune.errors import HwpruneError, ModelError, OptionError, UnsupportedLayerError
from hwprune.outputs import output_dir, output_file
from hwprune.prune.schedules import check_sparsity, nm_pattern

SCHEDULES = ("oneshot", "iterative", "gradual", "lottery")
METHODS = ("magnitude", "random", "neurons", "filters", "nm")
LR_SCHEDULES = ("constant", "step", "cosine", "onecycle")  # hwprune.prune.lr, without importing torch for --help


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prune", help="prune a torch model and fine-tune it (cross-entropy on an .npz)",
        description="Read MODEL (any model hwprune export reads: a torch module .pt/.pth, a .pt2 program, ONNX, "
                    "Keras, an hwprune graph folder), prune it to --sparsity with --method and --schedule while "
                    "fine-tuning on the arrays x, y of --data, and save it to --out: a torch chain to a .pt file "
                    "(a plain nn.Sequential, masks baked into the weights, that loads without --trust-model), "
                    "any model to an hwprune graph folder (--out without a suffix; graphs with branches train "
                    "through a torch twin of the graph, and --method filters/neurons remove units from it, the "
                    "channels an Add or a Concatenate ties removed together). With --schedule lottery MODEL "
                    "is the network at initialization (iterative magnitude pruning with rewinding).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--weights", metavar="W.h5", help="the HDF5 weights of a Keras 2 architecture .json MODEL")
    p.add_argument("--data", required=True, metavar="TRAIN.npz",
                   help="arrays x (inputs, in the model's layout) and y (class indices)")
    p.add_argument("--out", required=True, metavar="PRUNED.pt|DIR",
                   help="a .pt/.pth file (torch chains) or an hwprune graph folder (a name without a suffix); "
                        "must not exist unless --force")
    p.add_argument("--sparsity", required=True, type=ranges.SPARSITY, help="fraction of the prunable weights to remove, in [0, 1)")
    p.add_argument("--method", default="magnitude", choices=METHODS,
                   help="magnitude (default), random, neurons (Linear rows), filters (Conv channels), nm (N of "
                        "every M consecutive weights kept: --nm, else the N:M with M in 4, 8, 16 that --sparsity "
                        "names, e.g. 0.5 is 2:4, 0.75 is 1:4, 0.875 is 1:8)")
    p.add_argument("--nm", metavar="N:M", help="--method nm: keep N of every M consecutive weights (default: from "
                                                "--sparsity, which must then equal 1 - N/M)")
    p.add_argument("--scope", default="layer", choices=("layer", "global"),
                   help="the sparsity per layer (default) or one threshold over all layers")
    p.add_argument("--schedule", default="oneshot", choices=SCHEDULES,
                   help="oneshot (default), iterative (--rounds), gradual (polynomial decay), lottery")
    p.add_argument("--epochs", type=ranges.int_range(0, ranges.MAX_EPOCHS), default=10,
                   help=f"fine-tuning epochs, 0 to {ranges.MAX_EPOCHS} (>= 1 for gradual and lottery; in total, per round for lottery); default 10")
    p.add_argument("--rounds", type=ranges.int_range(1, ranges.MAX_ROUNDS), default=None,
                   help=f"pruning rounds of iterative and lottery, 1 to {ranges.MAX_ROUNDS} (default 5)")
    p.add_argument("--rewind-iteration", type=ranges.int_range(0, ranges.MAX_STEPS), default=None,
                   help="lottery: rewind survivors to their values after this many steps, >= 0 (default 0: init)")
    p.add_argument("--rewind", default=None, choices=("weights", "lr"),
                   help="lottery: after each pruning round, rewind the weights and the learning rate to "
                        "--rewind-iteration (weights, default: lottery tickets) or only the learning rate, "
                        "keeping the trained weights (lr: LR rewinding, Renda et al. 2020; give --lr-schedule)")
    p.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES,
                   help="learning rate over each training run: constant (default), step (/10 at 1/2 and 3/4), "
                        "cosine, onecycle (OneCycleLR's shape)")
    p.add_argument("--warmup-steps", type=ranges.int_range(0, ranges.MAX_STEPS), default=0,
                   help="ramp the learning rate up linearly over the first N steps of each run, >= 0 (default 0)")
    p.add_argument("--min-density", type=ranges.FRACTION, default=0.0,
                   help="keep at least this fraction of every layer's weights, in [0, 1] (against layer collapse; default 0)")
    p.add_argument("--lr", type=ranges.float_range(0.0, ranges.MAX_LR, low_open=True), default=1e-3,
                   help=f"Adam learning rate, > 0 and <= {ranges.MAX_LR:g} (default 0.001)")
    p.add_argument("--batch-size", type=ranges.int_range(1, ranges.MAX_BATCH), default=64,
                   help=f"1 to {ranges.MAX_BATCH} (default 64)")
    p.add_argument("--seed", type=ranges.SEED, default=0, help=f"0 to {ranges.MAX_SEED} (default 0)")
    p.add_argument("--threads", type=ranges.int_range(1, ranges.MAX_THREADS), default=1,
                   help=f"torch CPU threads, 1 to {ranges.MAX_THREADS} (default 1: small networks train fastest on one; raise it for large ones)")
    p.add_argument("--trust-model", action="store_true",
                   help="unpickle MODEL even if loading runs code from it (only for files you trust)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results on stdout")
    p.set_defaults(run=run)


def _check_options(args) -> None:
    check_sparsity(args.sparsity, "--sparsity")
    if args.epochs < 0 or (args.schedule in ("gradual", "lottery") and args.epochs < 1):
        raise OptionError(f"--epochs must be >= {1 if args.schedule in ('gradual', 'lottery') else 0} "
                          f"for --schedule {args.schedule}, got {args.epochs}")
    if args.rounds is not None and args.schedule not in ("iterative", "lottery"):
        raise OptionError(f"--rounds applies to --schedule iterative or lottery, not {args.schedule}")
    if args.rounds is not None and args.rounds < 1:
        raise OptionError(f"--rounds must be >= 1, got {args.rounds}")
    if args.rewind_iteration is not None and args.schedule != "lottery":
        raise OptionError(f"--rewind-iteration applies to --schedule lottery only, not {args.schedule}")
    if args.rewind is not None and args.schedule != "lottery":
        raise OptionError(f"--rewind applies to --schedule lottery only, not {args.schedule}")
    if args.warmup_steps < 0:
        raise OptionError(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if args.schedule == "lottery" and args.method != "magnitude":
        raise OptionError("--schedule lottery prunes by magnitude; drop --method or use another schedule")
    if not 0 <= args.seed < 2**32:  # numpy's and torch's generators take 0 .. 2**32 - 1 everywhere
        raise OptionError(f"--seed must be an integer from 0 to {2**32 - 1}, got {args.seed}")
    if not 0.0 <= args.min_density <= 1.0:
        raise OptionError(f"--min-density must be in [0, 1], got {args.min_density}")
    if Path(args.out).suffix not in ("", ".pt", ".pth"):
        raise OptionError(f"--out {args.out}: name it .pt or .pth (a torch module file) or give a folder name without "
                          "a suffix (an hwprune graph folder); hwprune export reads either")
    source = Path(args.model)
    if Path(args.out).suffix and (source.is_dir() or source.suffix not in (".pt", ".pth")):
        raise OptionError(f"--out {args.out}: {args.model} is not a torch module file; hwprune prune writes it as an "
                          "hwprune graph folder: give --out a name without a suffix (hwprune export reads the folder)")
    if args.nm is not None and args.method != "nm":
        raise OptionError(f"--nm applies to --method nm only, not {args.method}")
    if (source.is_dir() or source.suffix not in (".pt", ".pth")) and args.method in ("filters", "neurons"):
        _check_unit_options(args)  # a graph for sure: its options fail before any work


def _check_unit_options(args) -> None:
    """Options of unit removal on a graph (``prune.structured_graph``)."""
    if args.schedule not in ("oneshot", "iterative", "gradual"):
        raise OptionError(f"--method {args.method} on a graph removes units with --schedule oneshot, iterative or "
                          f"gradual, not {args.schedule}")
    if args.min_density:
        raise OptionError("--min-density applies to weight pruning; --method filters and neurons keep one unit "
                          "of every layer")


def _prune(args, model, x, y):
    from hwprune.prune import algorithms, rewinding, schedules

    criteria = {"min_density": args.min_density}
    if args.method == "nm":
        criteria["n"], criteria["m"] = schedules.nm_pattern(args.sparsity, args.nm)
    common = dict(scope=args.scope, strip=True, criteria=criteria, lr=args.lr,
                  batch_size=args.batch_size, seed=args.seed, progress=True, threads=args.threads,
                  lr_schedule=args.lr_schedule, warmup=args.warmup_steps)
    rounds = 5 if args.rounds is None else args.rounds
    if args.schedule == "oneshot":
        return algorithms.oneshot(model, x, y, args.sparsity, method=args.method, epochs=args.epochs, **common)
    if args.schedule == "iterative":
        return algorithms.iterative(model, x, y, args.sparsity, rounds=rounds, method=args.method,
                                    epochs=args.epochs, **common)
    if args.schedule == "gradual":
        return algorithms.gradual(model, x, y, args.sparsity, method=args.method, epochs=args.epochs, **common)
    return rewinding.lottery(model, x, y, args.sparsity, rounds=rounds, epochs=args.epochs,
                              rewind_iteration=args.rewind_iteration or 0, rewind=args.rewind or "weights", **common)


def _load(args, x_shape):
    """``(module, None)`` for a torch chain pruned as a module, else ``(None, graph)``."""
    from hwprune.frontends.torch import _chain, from_torch, load_torch_model
    from hwprune.pipeline import load_model, model_name

    source = Path(args.model)
    if source.is_dir() or source.suffix not in (".pt", ".pth"):
        return None, load_model(source, x_shape, trust_model=args.trust_model, weights=args.weights)
    module = load_torch_model(source, trust_model=args.trust_model)
    to_file = Path(args.out).suffix in (".pt", ".pth")
    try:
        _chain(module)
        if to_file:
            return module, None
    except UnsupportedLayerError:
        pass
    try:
        graph = from_torch(module, name=model_name(source), fallback_input_shape=x_shape)
    except HwpruneError as exc:
        raise type(exc)(f"{args.model}: {exc}") from None
    if to_file:
        raise OptionError(f"--out {args.out}: {args.model} is a graph with branches, which no nn.Sequential holds; "
                          "hwprune prune writes it as an hwprune graph folder: give --out a name without a suffix")
    return None, graph


def _prune_graph(args, graph, x, y):
    """Prune and fine-tune a float graph through its torch twin: (graph, result)."""
    import torch

    from hwprune.frontends.torch_twin import GraphTwin
    from hwprune.prune.algorithms import TrainOptions
    from hwprune.prune.criteria import compute_masks
    from hwprune.prune.masks import prunable_modules
    from hwprune.prune.structured_graph import prune_units

    if graph.is_quantized:
        raise ModelError(f"{args.model}: the model is quantized already; prune the float model, then export it")
    twin = GraphTwin(graph, torch.float32)
    if not prunable_modules(twin):
        raise ModelError(f"{args.model}: the model has no Dense or conv layers to prune")
    _check_fit(args, twin, x, y)
    if args.method in ("filters", "neurons"):
        _check_unit_options(args)
        train = TrainOptions(lr=args.lr, batch_size=args.batch_size, seed=args.seed, progress=True,
                             threads=args.threads, lr_schedule=args.lr_schedule, warmup=args.warmup_steps)
        rounds = (5 if args.rounds is None else args.rounds) if args.schedule == "iterative" else 1
        result = prune_units(graph, x, y, args.sparsity, train, args.method, args.scope, rounds, args.epochs,
                             schedule="gradual" if args.schedule == "gradual" else "iterative")
        return result.graph, result
    if not compute_masks(twin, args.sparsity, method=args.method, scope=args.scope):
        raise OptionError(f"--method {args.method} found nothing to prune in {args.model}")
    result = _prune(args, twin, x, y)
    return result.model.to_graph(), result


def _check_fit(args, model, x, y) -> None:
    from hwprune.prune.train import check_fits

    try:
        check_fits(model, x, y)
    except HwpruneError as exc:  # name the files: the data and the model do not fit together
        raise type(exc)(f"{args.data} with {args.model}: {exc}") from None


def run(args) -> int:
    import torch

    from hwprune.data import load_npz
    from hwprune.frontends.torch import save_torch_model
    from hwprune.ir.io import save_graph
    from hwprune.prune.algorithms import LayerCollapseWarning
    from hwprune.prune.criteria import compute_masks
    from hwprune.prune.masks import prunable_modules
    from hwprune.prune.train import as_tensors, check_finite

    _check_options(args)
    if args.method == "nm":
        nm_pattern(args.sparsity, args.nm)  # a sparsity that is no N:M fails before any work
    if args.threads < 1:
        raise OptionError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    to_file = Path(args.out).suffix in (".pt", ".pth")
    writer = output_file if to_file else output_dir
    with writer(args.out, force=args.force, inputs=(args.model, args.data, args.weights)) as tmp:  # fails before any work
        x, y = load_npz(args.data)
        x_t, y_t = as_tensors(x, y)
        model, graph = _load(args, tuple(x_t.shape[1:]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LayerCollapseWarning)  # reported below, one line each
            if graph is not None:
                graph, result = _prune_graph(args, graph, x_t, y_t)
                save_graph(graph, tmp)  # weights are checked finite when the graph is built
            else:
                _check_fit(args, model, x_t, y_t)
                if not prunable_modules(model):
                    raise ModelError(f"{args.model}: the model has no Linear or Conv layers to prune")
                if not compute_masks(model, args.sparsity, method=args.method, scope=args.scope):
                    kind = "Linear layers before the output layer" if args.method == "neurons" else "Conv layers"
                    raise OptionError(f"--method {args.method} found no {kind} to prune in {args.model}")
                result = _prune(args, model, x_t, y_t)
                check_finite(result.model)  # NaN/Inf from training (or from MODEL) is never saved
                save_torch_model(result.model, tmp)  # a plain nn.Sequential: export reads it without --trust-model
    _report(args, result, graph)
    return 0


def _report(args, result, graph) -> None:
    from hwprune.prune.collapse import worth_reporting

    findings = worth_reporting(getattr(result, "warnings", ()), args.method)
    for finding in findings:
        print(f"hwprune prune: warning: {finding}", file=sys.stderr)
    if args.method in ("neurons", "filters") and abs(result.sparsity - args.sparsity) > 0.05:
        pruned = "Linear layers before the output layer" if args.method == "neurons" else "Conv layers"
        print(f"hwprune prune: warning: reached {result.sparsity:.1%} sparsity of all prunable weights, not the "
              f"requested {args.sparsity:.0%}: --method {args.method} removes whole units of {pruned} only, and "
              "--sparsity is the fraction of those it removes", file=sys.stderr)
    if args.rewind == "lr" and args.lr_schedule == "constant" and not args.warmup_steps:
        print("hwprune prune: warning: --rewind lr with a constant learning rate has no schedule to rewind: it is "
              "retraining from the pruned weights; give --lr-schedule step, cosine or onecycle", file=sys.stderr)
    summary = {
        "out": str(args.out),
        "sparsity": result.sparsity,
        "layers": result.layers,
        "train_accuracy": result.train_accuracy,
        "method": args.method,
        "scope": args.scope,
        "schedule": args.schedule,
        "epochs": args.epochs,
        "rounds": (5 if args.rounds is None else args.rounds) if args.schedule in ("iterative", "lottery") else None,
        "rewind_iteration": (args.rewind_iteration or 0) if args.schedule == "lottery" else None,
        "rewind": (args.rewind or "weights") if args.schedule == "lottery" else None,
        "lr_schedule": args.lr_schedule,
        "warmup_steps": args.warmup_steps,
        "seed": args.seed,
        "collapse_warnings": [str(w) for w in findings],
        "format": "torch" if graph is None else "graph",
    }
    if graph is not None:
        summary.update(weights=graph.total_weights, nonzero_weights=graph.nonzero_weights, macs=graph.macs,
                       units_removed=getattr(result, "units", None))
    if args.json:
        print(json.dumps(summary))
    else:
        layers = ", ".join(f"{name} {value:.1%}" for name, value in result.layers.items())
        units = f"{result.units:.1%} of the units removed, " if graph is not None and hasattr(result, "units") else ""
        print(f"wrote {args.out}: {units}sparsity {result.sparsity:.2%} ({layers}), "
              f"train accuracy {result.train_accuracy:.2%}")
