"""Which engines verify an export folder, and for which chip: the export's target (or the
one named on the command line) decides whether the Cortex-M engine runs."""

from __future__ import annotations

from typing import Optional, Sequence

from hwprune.errors import OptionError, TargetError, ToolchainError
from hwprune.harness.engines import ENGINES
from hwprune.harness.mcu import McuEngine
from hwprune.targets import Target


def named_engines(engines: Sequence[str]) -> list[str]:
    """The engines named on the command line, each once and in order; an unknown name is an
    OptionError listing the registered ones."""
    names = list(dict.fromkeys(engines))
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        raise OptionError(f"unknown engine {unknown[0]!r}; known engines are {sorted(ENGINES)}")
    return names


def check_mcu_choice(target: Target, names: Sequence[str], cc: Optional[str]) -> None:
    """The mcu engine among ``names`` needs a Cortex-M ``target``; ``cc`` (its cross compiler)
    needs the mcu engine among them."""
    if "mcu" in names and target.kind != "mcu":
        raise TargetError(f"the mcu engine needs a Cortex-M target; {target.name!r} is a {target.kind} target "
                          "(pass --target NAME)")
    if cc is not None and "mcu" not in names:
        raise OptionError(f"--cc {cc} is the mcu engine's cross compiler, and the mcu engine does not run here "
                          f"(target {target.name!r}{'' if target.kind == 'mcu' else ', not a Cortex-M'}); "
                          "pass --engine mcu, a Cortex-M --target, or drop --cc")


def select_engines(target: Target, chosen: bool, engines: Optional[Sequence[str]] = None, cc: Optional[str] = None,
                   default_cc: Optional[str] = None):
    """Engines for ``verify``: the names given, else every registered one but the reference,
    with ``mcu`` only for a chosen Cortex-M target. Returns (engines, the McuEngine or None).

    An ``mcu`` engine that was asked for by name and cannot run is an error (ToolchainError);
    one chosen by default and unavailable is reported as skipped. ``cc``: the cross compiler
    asked for (an error when the mcu engine does not run); ``default_cc``: the export's.
    """
    if engines:
        names = named_engines(engines)
    else:
        # engines that are not run by default (mcu: it needs a target; tflm: a .tflite) only by name
        names = [n for n, factory in ENGINES.items() if n not in ("reference", "mcu")
                 and getattr(factory, "by_default", True)]
        if target.kind == "mcu" and chosen:
            names.append("mcu")
    check_mcu_choice(target, names, cc)
    mcu = None
    out = []
    for name in names:
        if name == "mcu":
            mcu = McuEngine(target=target, cc=cc or default_cc, progress=True)
            if engines:
                reason = mcu.unavailable_reason()
                if reason:
                    raise ToolchainError(f"--engine mcu cannot run: {reason}")
            out.append(mcu)
        else:
            out.append(name)
    return out, mcu
