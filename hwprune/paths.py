"""Where the data files (templates, target files, energy tables) live, installed or in a checkout.

In the repository they sit at the top (``templates/``, ``targets/``, ``costs/``) so that
they are easy to find and edit; the wheel carries them inside the package
(``hwprune/templates``, ``hwprune/targets``, ``hwprune/costs``, see pyproject.toml). Code asks here instead of guessing a path.
"""

from __future__ import annotations

from pathlib import Path

from hwprune.errors import HwpruneError

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # An installed wheel first: a stale checkout next to it must not win.
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise HwpruneError(
        f"hwprune's {name}/ folder is missing (looked in {_PACKAGE_DIR / name} and {_PACKAGE_DIR.parent / name}); "
        "reinstall hwprune"
    )


def templates_dir() -> Path:
    """The folder holding ``c/`` (and later ``hls4ml/``) templates."""
    return _data_dir("templates")


def targets_dir() -> Path:
    """The folder holding one ``<chip>.toml`` file per target."""
    return _data_dir("targets")


def costs_dir() -> Path:
    """The folder holding the energy tables (``energy_45nm.toml``)."""
    return _data_dir("costs")
