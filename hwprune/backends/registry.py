"""The backends an export can write, in one registry (C, hls4ml, RTL, and any new one).

A backend is an object with a ``name`` (what ``--backend`` says; every registered backend is
one of its choices), a one-line ``description`` (its entry in ``export --help``), its options' class
(``options_type``: the options only it reads live there, not in ``pipeline.ExportOptions``),
the width it quantizes to by default, a ``check`` run before any work, and a ``write``
that fills its folder of the export and returns its entries of ``export.json``. A backend
whose folder holds code that an engine compiles or runs also offers
``regenerate(folder, graph, meta, tmp)``: that folder written again into ``tmp`` from the
export's graph and export.json (``meta``), returning its name, or None when the export has
none of it; ``harness.regenerate`` compares the two byte for byte before any engine runs.
``pipeline.write_export`` loops over the options it is given, in registration order, and
asks ``backend_for(options)`` which backend each belongs to.

On the command line a backend declares its own flags (``add_arguments``, on ``export``'s
parser) and builds its options from them (``options_from_args``): ``export`` knows no
backend's flags by name. A backend without these hooks is written with its options'
defaults when ``--backend`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from hwprune.errors import OptionError
from hwprune.ir.graph import Graph
from hwprune.targets import Target


@dataclass(frozen=True)
class BackendContext:
    """What every backend of one export sees: the quantized graph, the test vectors as
    integers with the reference's outputs, the chip (``target_given``: named by the user,
    else the default chip that sizes are compared with), the folder holding the graph and
    what the harness measured for it."""
    graph: Graph
    x_int: np.ndarray
    y_int: np.ndarray
    target: Target
    target_given: bool
    graph_dir: Path
    #: cycles per (layer, format) the Cortex-M emulator measured for the C backend's
    #: ``--optimize speed`` (``harness.format_speed.measured_speeds``); None: the cost model
    measured_cycles: Optional[dict] = None


class Backend(Protocol):
    name: str
    description: str  # what --backend NAME writes, for export --help
    options_type: type
    default_bits: int  # the width a float model is quantized to when the user gives none

    def check(self, graph: Graph, options: Any, target: Optional[Target]) -> None:
        """Refuse what this backend cannot write (one line, an HwpruneError) before any work."""

    def write(self, folder: Path, options: Any, context: BackendContext) -> dict:
        """Write this backend's files under the export ``folder``; its export.json entries."""

    # Optional, for the command line:
    # add_arguments(parser): declare its flags on export's parser (each defaulting to None or False);
    # options_from_args(args, target, spec, chosen) -> options or None: its options when it is
    #   written (``chosen``: --backend names it), None otherwise, refusing in one line a flag of
    #   its own given for another backend.


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    if backend.name in BACKENDS:
        raise ValueError(f"backend {backend.name!r} is registered twice")
    BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise OptionError(f"unknown backend {name!r}; known backends are {', '.join(BACKENDS)}")
    return BACKENDS[name]


def backend_for(options: Any) -> Backend:
    """The backend whose options ``options`` are."""
    for backend in BACKENDS.values():
        if isinstance(options, backend.options_type):
            return backend
    raise OptionError(f"{type(options).__name__} are no backend's options; known backends are {', '.join(BACKENDS)}")


def ordered(options: Sequence[Any]) -> list[tuple[Backend, Any]]:
    """(backend, options) for each options given, in registration order; one per backend."""
    chosen: dict[str, tuple[Backend, Any]] = {}
    for opts in options:
        backend = backend_for(opts)
        if backend.name in chosen:
            raise OptionError(f"the {backend.name} backend is asked for twice")
        chosen[backend.name] = (backend, opts)
    return [chosen[name] for name in BACKENDS if name in chosen]


def add_backend_arguments(parser) -> None:
    """Every registered backend's own flags, on ``export``'s parser."""
    for backend in BACKENDS.values():
        hook = getattr(backend, "add_arguments", None)
        if hook is not None:
            hook(parser)


def options_from_args(args: Any, target: Optional[Target], spec: Any, chosen: str) -> tuple:
    """The options of every backend an export writes, from its parsed flags (``chosen``: the
    backend ``--backend`` names); a backend's flag given for another backend is refused."""
    get_backend(chosen)
    found = []
    for name, backend in BACKENDS.items():
        hook = getattr(backend, "options_from_args", None)
        if hook is not None:
            options = hook(args, target, spec, name == chosen)
        else:
            options = backend.options_type() if name == chosen else None
        if options is not None:
            found.append(options)
    return tuple(found)
