"""What pruning saves on the FPGA, per weighted layer.

- Latency and DA: weights are constants in the logic. A zero weight's product is a
  constant zero that synthesis removes, a weight of +-2**k is a shift; so the
  multiplications that remain are the nonzero weights, and the ones that need a
  multiplier (a DSP or a LUT multiplier) are those that are not a signed power of two.
  DA (da4ml) turns the whole layer into adders; its adder cost is da4ml's own estimate.
- Resource: weights live in memory. Dense storage keeps every weight; the compressed
  (COO) storage keeps, per nonzero, its input index, output index and value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwprune.ir.fixed import from_grid


def index_bits(n: int) -> int:
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


@dataclass(frozen=True)
class LayerCost:
    name: str
    weights: int
    nonzero: int
    multiplier_weights: int  # nonzero and not +-2**k
    weight_bits: int
    dense_memory_bits: int
    coo_memory_bits: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _is_power_of_two(q: np.ndarray) -> np.ndarray:
    a = np.abs(q)
    return (a != 0) & ((a & (a - 1)) == 0)


def coo_shape(weight: np.ndarray) -> tuple[int, int, int]:
    """(stored entries, input index bits, output index bits) of a (out, in) weight matrix in COO."""
    n_out, n_in = weight.shape[0], int(np.prod(weight.shape[1:]))
    return max(int(np.count_nonzero(weight)), 1), index_bits(n_in), index_bits(n_out)


def layer_cost(layer) -> LayerCost:
    q = from_grid(layer.weight, layer.weight_t, f"layer {layer.name!r} weight")
    nonzero = int(np.count_nonzero(q))
    width = layer.weight_t.width
    entries, row_bits, col_bits = coo_shape(q)
    return LayerCost(
        name=layer.name, weights=int(q.size), nonzero=nonzero,
        multiplier_weights=int(np.count_nonzero(q) - np.count_nonzero(_is_power_of_two(q))),
        weight_bits=width, dense_memory_bits=int(q.size) * width,
        coo_memory_bits=entries * (width + row_bits + col_bits),
    )
