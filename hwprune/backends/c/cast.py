"""One fixed-point conversion of the generated C, shared by every plan module (dense, conv,
pooling, activations, merges): it sits below them so that none imports another for it."""

from __future__ import annotations

from dataclasses import dataclass

from hwprune.ir.fixed import Fixed


@dataclass(frozen=True)
class Cast:
    """Arguments of ``hwprune_cast_i<bits>``: convert by ``shift`` fraction bits to ``to``."""

    shift: int
    to: Fixed
    bits: int

    @property
    def args(self) -> str:
        t = self.to
        return (f"{self.shift}, {t.width}, {int(t.signed)}, HWPRUNE_{t.rounding.value}, "
                f"HWPRUNE_{t.overflow.value}")
