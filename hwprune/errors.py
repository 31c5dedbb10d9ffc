"""The one error hierarchy of hwprune.

Every error says what was wrong, where, and (when there is one) what to do. The CLI
prints the message to stderr without a traceback and exits with code 2 (bad input), or 1
for an ``InternalError`` (hwprune's own output failed: a bug, not the user's input).
"""

from __future__ import annotations


class HwpruneError(Exception):
    """Base class: anything the user can fix by changing the input or the options."""

    exit_code = 2


class ModelError(HwpruneError):
    """A model file or module that cannot be read or is not supported."""


class UnsupportedLayerError(ModelError):
    """A layer (module) type that the IR has no counterpart for."""


class ShapeError(HwpruneError):
    """Shapes that do not fit together (graph build, calibration data, inputs)."""


class WeightError(HwpruneError):
    """NaN or Inf weights, or weights that are not on their fixed-point grid."""


class FixedPointError(HwpruneError):
    """An invalid fixed-point type or a value that does not fit its type."""


class DataError(HwpruneError):
    """Training, calibration or test data that is missing or malformed."""


class OptionError(HwpruneError):
    """A command-line or API option outside its allowed range."""


class OutputError(HwpruneError):
    """An output that cannot be written where asked, or that --force must not replace."""


class OutputExistsError(OutputError):
    """An output folder or file that exists already (pass --force to replace it)."""


class FolderError(HwpruneError):
    """An export folder without hwprune's manifest, or whose files do not match it."""


class TrustError(ModelError):
    """A model file that would run code to load; only --trust-model opens it."""


class TargetError(HwpruneError):
    """An unknown target, or a target file with unknown or missing keys."""


class ToolchainError(HwpruneError):
    """A compiler or simulator that is missing or failed."""


class InternalError(ToolchainError):
    """A tool failed on what hwprune itself wrote (its generated C does not compile, its
    firmware or simulation crashes): a bug in hwprune. ``bug_log.internal_error`` makes
    one whose message names the log holding the details."""

    exit_code = 1


class VerificationError(HwpruneError):
    """Engines that disagree (bit-exactness failed)."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the CLI's handler: it unwinds like Ctrl-C, so temporary files are
    removed on the way out."""
