"""The C backend's options (``--format``, ``--optimize``, ``--cc``, ``--no-compile``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hwprune.backends.c.formats import OPTIMIZE, policies
from hwprune.errors import OptionError

DEFAULT_BITS = 8  # microcontrollers: int8 weights and activations, the kernels' native width


@dataclass(frozen=True)
class COptions:
    format: str = "auto"  # a format for every weighted layer, or a policy (auto: chosen per layer)
    optimize: str = "balanced"  # what auto minimizes: size, speed, or bytes x cycles
    cc: Optional[str] = None  # the Cortex-M cross compiler: clang (zig) or gcc
    compile: bool = True  # False: write the sources without compiling or verifying them

    def __post_init__(self) -> None:
        if self.format not in policies():
            raise OptionError(f"--format must be one of {', '.join(policies())}, got {self.format!r}")
        if self.optimize not in OPTIMIZE:
            raise OptionError(f"--optimize must be one of {', '.join(OPTIMIZE)}, got {self.optimize!r}")
