"""``hwprune targets``: list the target chips hwprune knows."""

from __future__ import annotations

import json
from dataclasses import asdict

from hwprune.targets import available_targets


def add_parser(sub) -> None:
    p = sub.add_parser("targets", help="list the target chips (targets/*.toml)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    targets = available_targets()
    if args.json:
        print(json.dumps({name: asdict(t) for name, t in targets.items()}))
        return 0
    print(f"{'name':<12} {'kind':<5} {'flash KiB':>9} {'RAM KiB':>8} {'MHz':>5} {'nJ/cycle':>8}  {'core / part':<20} "
          "description")
    for t in targets.values():
        def cell(v, width):
            return f"{'-' if v is None else v:>{width}}"
        print(f"{t.name:<12} {t.kind:<5} {cell(t.flash_kib, 9)} {cell(t.ram_kib, 8)} {cell(t.clock_mhz, 5)} "
              f"{cell(t.energy_nj_per_cycle, 8)}  {t.cpu or t.part or t.device or '-':<20} {t.description}")
    return 0
