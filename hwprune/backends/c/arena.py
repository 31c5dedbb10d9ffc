"""One static activation arena: where each intermediate tensor lives, sized at export time.

Each buffer is live from the step that writes it to the last step that reads it
(``first``..``last``, both inclusive: a kernel never writes over an input it still reads).
Two buffers may share bytes only when their lifetimes are disjoint. The planner places
buffers by first fit under a few orders and keeps the smallest arena:

- by size, largest first, each at the lowest offset clear of every placed buffer it
  overlaps in time (the greedy-by-size heuristic of TFLite Micro's planner);
- in write order inside the liveness lower bound, alternately from the bottom and from the
  top. On a chain (tensor t live with t - 1 and t + 1 only) this is the ping-pong layout that
  needs only the largest sum of two consecutive tensors, which is the lower bound there.

Then it checks its own plan: every buffer inside the arena, aligned, and no two buffers
that are live at the same time overlapping; a violation is an AssertionError naming both,
never a silently corrupt model. Offsets are multiples of ``ALIGN`` bytes so that every C
integer type is aligned wherever it lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

ALIGN = 8


def aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN



@dataclass(frozen=True)
class Buffer:
    name: str
    nbytes: int
    first: int  # the step that writes it
    last: int  # the last step that reads it (>= first)

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Arena:
    nbytes: int
    offsets: dict[str, int]  # bytes from the arena's start, per buffer name
    live_bound: int  # the most bytes live at one step: no plan is smaller
    never_reuse: int  # every buffer in its own bytes


def live_bound(buffers: list[Buffer]) -> int:
    steps = {b.first for b in buffers} | {b.last for b in buffers}
    return max((sum(aligned(b.nbytes) for b in buffers if b.first <= s <= b.last) for s in steps), default=0)


def _first_fit(size: int, busy: list[tuple[int, int]], from_top: bool, capacity: Optional[int]) -> Optional[int]:
    """The lowest (or, from the top, highest) offset where ``size`` bytes miss every busy range."""
    clear = lambda o: o >= 0 and all(o + size <= lo or o >= hi for lo, hi in busy)  # noqa: E731
    if from_top:
        candidates = sorted({capacity - size, *(lo - size for lo, _ in busy)}, reverse=True)
        fits = [o for o in candidates if o + size <= capacity and clear(o)]
    else:
        candidates = sorted({0, *(hi for _, hi in busy)})
        fits = [o for o in candidates if (capacity is None or o + size <= capacity) and clear(o)]
    return fits[0] if fits else None


def _place(order: list[Buffer], side: Callable[[int], bool], capacity: Optional[int]) -> Optional[dict[str, int]]:
    offsets: dict[str, int] = {}
    for k, buf in enumerate(order):
        size = aligned(buf.nbytes)
        busy = [(offsets[o.name], offsets[o.name] + aligned(o.nbytes)) for o in order[:k] if o.overlaps_in_time(buf)]
        top = side(k)
        offset = _first_fit(size, busy, top, capacity)
        if offset is None and capacity is not None:
            offset = _first_fit(size, busy, not top, capacity)
        if offset is None:
            return None
        offsets[buf.name] = offset
    return offsets


def check(buffers: list[Buffer], offsets: dict[str, int], nbytes: int) -> None:
    """The plan's own proof: aligned, inside the arena, no two live buffers overlapping."""
    for b in buffers:
        o = offsets[b.name]
        if o % ALIGN or o < 0 or o + b.nbytes > nbytes:
            raise AssertionError(f"arena: {b.name} at {o} is unaligned or outside {nbytes} bytes")
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b):
                oa, ob = offsets[a.name], offsets[b.name]
                if not (oa + a.nbytes <= ob or ob + b.nbytes <= oa):
                    raise AssertionError(f"arena: {a.name} [{oa}, {oa + a.nbytes}) and {b.name} [{ob}, {ob + b.nbytes}) "
                                         "are live together and overlap")


def plan(buffers: list[Buffer]) -> Arena:
    """The smallest arena the heuristics find for ``buffers``, checked."""
    names = [b.name for b in buffers]
    assert len(set(names)) == len(names), "arena: buffer names must be unique"
    bound = live_bound(buffers)
    never = sum(aligned(b.nbytes) for b in buffers)
    in_order = sorted(buffers, key=lambda b: (b.first, b.last))
    attempts = [
        _place(in_order, lambda k: k % 2 == 1, bound),
        _place(sorted(buffers, key=lambda b: (-aligned(b.nbytes), b.first)), lambda k: False, None),
        _place(in_order, lambda k: False, None),
    ]
    best: Optional[tuple[int, dict[str, int]]] = None
    for offsets in attempts:
        if offsets is None:
            continue
        size = max((offsets[b.name] + aligned(b.nbytes) for b in buffers), default=0)
        if best is None or size < best[0]:
            best = (size, offsets)
    assert best is not None  # the unbounded first fit always places every buffer
    check(buffers, best[1], best[0])
    return Arena(best[0], best[1], bound, never)
