"""Run every pruning experiment in turn (one process, one torch thread).

    python -m benchmarks.experiments.run_all [--quick] [--seeds N] [--from-results]

Each experiment writes benchmarks/results/<name>.json, docs/experiments_<name>.md and
its figures in docs/figures/; docs/experiments.md summarizes them.
"""

from __future__ import annotations

import sys
import time

from benchmarks.experiments import budget, criteria, generality, lottery, qat, rewinding, schedules, storage

EXPERIMENTS = (("schedules", schedules), ("budget", budget), ("criteria", criteria), ("lottery", lottery), ("qat", qat),
               ("rewinding", rewinding), ("generality", generality), ("storage", storage))


def main() -> None:
    argv = sys.argv[1:]
    start = time.perf_counter()
    for name, module in EXPERIMENTS:
        began = time.perf_counter()
        sys.argv = [f"benchmarks.experiments.{name}", *argv]
        module.main()
        print(f"{name}: {(time.perf_counter() - began) / 60:.1f} min", file=sys.stderr)
    print(f"all experiments: {(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
