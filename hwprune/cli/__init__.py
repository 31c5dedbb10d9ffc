"""The ``hwprune`` command line. One module per subcommand, each with ``add_parser``.

The CLI is a contract that other tools script: errors go to stderr as one line, exit
code 2 for bad input, 1 when verification fails or hwprune itself failed (its own C does
not compile, a tool crashes, an unexpected exception: "this is a bug in hwprune" and the
path of a log with the details); machine-readable output (``--json``)
is one JSON object alone on stdout, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
import threading
import traceback
import warnings

from hwprune import __version__
from hwprune.bug_log import write_log
from hwprune.errors import HwpruneError, Terminated

COMMANDS = ("demo", "export", "verify", "predict", "report", "prune", "targets", "sweep", "resources")


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: one line on stderr and exit 2, not the usage block."""

    def error(self, message):
        # A range of ``cli.ranges`` reads as "--epochs must be ...", not "argument --epochs: must be ..."
        message = re.sub(r"^argument (--[\w-]+): must be ", r"\1 must be ", str(message))
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: Set once SIGTERM arrived: a library may turn the Terminated its handler raised into a
#: KeyboardInterrupt of its own (Ray's wait does, from a C++ "interrupted" status).
_sigterm_received = threading.Event()


def _terminate(signum, frame):
    _sigterm_received.set()
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a malformed command line (one line, exit 2)
        return exc.code if isinstance(exc.code, int) else 2
    command = f"hwprune {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{command}: warning: {_one_line(message)}", file=sys.stderr)

    warnings.showwarning = show_warning
    if threading.current_thread() is threading.main_thread():
        _sigterm_received.clear()
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.run(args) or 0)
    except HwpruneError as exc:
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # before OSError, its base class
        # The reader of stdout went away (``hwprune verify --json | head``): not an error of
        # this command. Point stdout at /dev/null so the interpreter's final flush is quiet.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a disk or permission fault outside the checks: still one line
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # the shell's convention: 128 + the signal's number
        terminated = isinstance(exc, Terminated) or _sigterm_received.is_set()
        print(f"{command}: interrupted ({'SIGTERM' if terminated else 'SIGINT'})", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except Exception as exc:  # a crash of hwprune itself: one line, and the traceback kept in a log
        what = f"{type(exc).__name__}: {_one_line(exc)}"
        path = write_log(f"$ hwprune {' '.join(map(str, sys.argv[1:] if argv is None else argv))}\n{what}", traceback.format_exc())
        print(f"{command}: error: internal error ({what}); this is a bug in hwprune; the details are in {path} "
              "(please report it with that file)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
