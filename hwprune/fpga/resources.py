"""What the FPGA estimate says of one layer (``LayerResources``), and the integers of a
layer's weights: shared by the rules (``estimate``) and the da4ml tracer (``da``), below both."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hwprune.ir.fixed import from_grid


@dataclass(frozen=True)
class LayerResources:
    name: str
    kind: str
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram_18k: int = 0
    latency_cycles: int = 0
    ii: int = 1
    #: How the products were classified: shift (0 or a power of two), lut, dsp.
    products: dict = field(default_factory=dict)
    method: str = ""

    @property
    def bram_36k(self) -> int:
        return math.ceil(self.bram_18k / 2)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "dsp": self.dsp, "lut": self.lut, "ff": self.ff,
                "bram_18k": self.bram_18k, "bram_36k": self.bram_36k, "latency_cycles": self.latency_cycles,
                "ii": self.ii, "products": dict(self.products), "method": self.method}



def dense_integers(layer) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias as the integers on their grids."""
    w = from_grid(layer.weight, layer.weight_t, f"layer {layer.name!r} weight")
    b = from_grid(layer.bias, layer.bias_t, f"layer {layer.name!r} bias")
    return w, b
