"""``hwprune demo``: train, prune, quantize, export and verify a digits MLP."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on sklearn's digits (a few seconds)",
                       description="Train a 64-128-64-10 MLP on sklearn.datasets.load_digits, prune it to 90 %%, "
                                   "fine-tune, quantize to 8 bits, export C, verify it bit for bit and "
                                   "write DIR/report.md and DIR/report.json.")
    p.add_argument("--out", default="hwprune-demo", metavar="DIR", help="output folder (default: hwprune-demo)")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.add_argument("--seed", type=int, default=0, help="0 to 4294967294 (default 0)")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.demo import DemoConfig, run_demo

    report = run_demo(args.out, force=args.force, config=DemoConfig(seed=args.seed))
    return 0 if report["bit_exact"] else 1
