"""One static activation arena: where each intermediate tensor lives, sized at export time.

A chain of layers reads only the previous layer's output, so tensor ``t`` must not overlap
tensor ``t - 1`` (its input) nor ``t + 1`` (its output), and may overlap everything else.
Placing tensors alternately at the bottom and the top of the arena does exactly that:
the arena needs only the largest sum of two consecutive tensors, never the sum of the two
largest (what two ping-pong buffers cost). Offsets are multiples of ``ALIGN`` bytes so that
every C integer type is aligned wherever it lands.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 8


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


@dataclass(frozen=True)
class Arena:
    nbytes: int
    offsets: tuple[int, ...]  # bytes from the arena's start, one per tensor in order


def place(sizes_bytes: list[int]) -> Arena:
    """Offsets for tensors written in this order, each consumed by the next."""
    sizes = [_aligned(s) for s in sizes_bytes]
    pairs = [a + b for a, b in zip(sizes, sizes[1:])]
    nbytes = max([*pairs, *sizes], default=0)
    offsets = tuple(0 if t % 2 == 0 else nbytes - size for t, size in enumerate(sizes))
    return Arena(nbytes, offsets)
