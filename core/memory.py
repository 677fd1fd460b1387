"""Activation memory planning: tensors whose lifetimes do not overlap share
bytes of one arena (greedy by size, as TFLite's arena planner does)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALIGNMENT = 64


@dataclass(frozen=True)
class Interval:
    """A tensor's byte size and the first and last step that touch it."""

    tensor: int
    nbytes: int
    first: int
    last: int


@dataclass(frozen=True)
class ArenaPlan:
    """Byte offset of each planned tensor and the arena size."""

    offsets: dict[int, int]
    arena_bytes: int
    naive_bytes: int

    def overwritten(self, tensor: int, intervals: dict[int, Interval]) -> bool:
        """True if a tensor written after ``tensor`` reuses any of its bytes."""
        mine = intervals[tensor]
        off = self.offsets[tensor]
        return any(other.first > mine.first and _bytes_overlap(
            off, mine.nbytes, self.offsets[t], other.nbytes) for t, other in intervals.items())


def _aligned(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _bytes_overlap(a: int, an: int, b: int, bn: int) -> bool:
    return a < b + bn and b < a + an


def plan_arena(intervals: list[Interval], share: bool = True) -> ArenaPlan:
    """Assign offsets; with ``share=False`` every tensor gets its own bytes."""
    naive = sum(_aligned(iv.nbytes) for iv in intervals)
    offsets: dict[int, int] = {}
    placed: list[tuple[int, int, Interval]] = []   # (offset, size, interval)
    order = sorted(intervals, key=lambda iv: (-iv.nbytes, iv.first))
    for iv in order:
        size = _aligned(max(iv.nbytes, 1))
        if not share:
            offset = sum(p[1] for p in placed)
        else:
            offset = _lowest_fit(size, [(o, s) for o, s, other in placed
                                        if other.first <= iv.last and iv.first <= other.last])
        offsets[iv.tensor] = offset
        placed.append((offset, size, iv))
    arena = max((o + s for o, s, _ in placed), default=0)
    return ArenaPlan(offsets, arena, naive)


def _lowest_fit(size: int, busy: list[tuple[int, int]]) -> int:
    offset = 0
    for o, s in sorted(busy):
        if offset + size <= o:
            break
        offset = max(offset, o + s)
    return offset


def arena_views(plan: ArenaPlan, specs: dict[int, tuple[tuple[int, ...], np.dtype]]
                ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Allocate the arena and a view for each planned tensor."""
    arena = np.empty(plan.arena_bytes + ALIGNMENT, dtype=np.uint8)
    start = (-arena.ctypes.data) % ALIGNMENT
    views = {t: np.ndarray(shape, dtype, buffer=arena, offset=start + plan.offsets[t])
             for t, (shape, dtype) in specs.items()}
    return arena, views
