"""``hwprune demo``: train, prune, quantize, export and verify a digits MLP."""

from __future__ import annotations

from hwprune import ranges
from hwprune.targets import get_target


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on sklearn's digits (a few seconds)",
                       description="Train a 64-128-64-10 MLP on sklearn.datasets.load_digits, prune it to 90 %, "
                                   "fine-tune, quantize to 8 bits, export C, verify it bit for bit on the host and "
                                   "in a Cortex-M4 emulator, and write DIR/report.md and DIR/report.json.")
    p.add_argument("--out", default="hwprune-demo", metavar="DIR", help="output folder (default: hwprune-demo)")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.add_argument("--seed", type=ranges.int_range(0, ranges.MAX_SEED - 1), default=0, help="0 to 4294967294 (default 0)")
    p.add_argument("--target", metavar="NAME|PATH", default="stm32l4r5",
                   help="a chip (hwprune targets; default stm32l4r5, a Cortex-M4F): for a Cortex-M target the "
                        "firmware is cross-built and run in the emulator, bit for bit, and its flash, RAM, cycles, "
                        "latency and energy are reported; host: the host C check alone")
    from hwprune.backends.c.formats import OPTIMIZE, policies

    p.add_argument("--format", default="auto", choices=list(policies()),
                   help="weight storage, as for hwprune export (default auto)")
    p.add_argument("--optimize", default="balanced", choices=list(OPTIMIZE),
                   help="what auto chooses per layer, as for hwprune export (default balanced)")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.demo import DemoConfig, run_demo

    if args.target:
        get_target(args.target)  # an unknown target fails before the training
    config = DemoConfig(seed=args.seed, target=args.target, format=args.format, optimize=args.optimize)
    report = run_demo(args.out, force=args.force, config=config)
    return 0 if report["bit_exact"] else 1
