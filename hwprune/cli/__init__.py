"""The ``hwprune`` command line. One module per subcommand, each with ``add_parser``.

The CLI is a contract that other tools script: errors go to stderr as one line, exit
code 2 for bad input, 1 when verification fails; machine-readable output (``--json``)
is one JSON object alone on stdout, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hwprune import __version__
from hwprune.errors import HwpruneError

COMMANDS = ("demo", "export", "verify", "predict", "report", "prune", "targets", "sweep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwprune",
        description="Prune, quantize and lower neural networks to bit-exact sparse C.",
    )
    parser.add_argument("--version", action="version", version=f"hwprune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"hwprune.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hwprune.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except HwpruneError as exc:
        print(f"hwprune {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hwprune {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
