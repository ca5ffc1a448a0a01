"""Keeping a bounded part of a stream of logged rows: a uniform sample, or the newest N.

Items are (timestamp, raw log line): lines are kept raw while reading (smaller than parsed dicts) and parsed
once, when the window is complete.
"""

from __future__ import annotations

import heapq
import random
from datetime import datetime


class Reservoir:
    """A uniform sample of at most `size` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rows = 0
        self.items: list[tuple[datetime, str]] = []
        self._rng = rng
        self._first: datetime | None = None
        self._last: datetime | None = None

    @property
    def span(self) -> tuple[datetime, datetime]:
        assert self._first is not None and self._last is not None, "span of an empty window"
        return self._first, self._last

    def offer(self, item: tuple[datetime, str]) -> None:
        stamp = item[0]
        self._first = stamp if self._first is None else min(self._first, stamp)
        self._last = stamp if self._last is None else max(self._last, stamp)
        self.rows += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._rng.randrange(self.rows)
        if slot < self.size:
            self.items[slot] = item


class Newest:
    """The newest `size` items of a stream (a min-heap on timestamp), later sampled down."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._offered = 0
        self._heap: list[tuple[datetime, int, str]] = []

    def offer(self, item: tuple[datetime, str]) -> None:
        self._offered += 1
        entry = (item[0], self._offered, item[1])  # the counter breaks timestamp ties without comparing lines
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    @property
    def items(self) -> list[tuple[datetime, str]]:
        return [(stamp, line) for stamp, _, line in self._heap]

    @property
    def rows(self) -> int:
        return len(self._heap)

    @property
    def span(self) -> tuple[datetime, datetime]:
        return self._heap[0][0], max(stamp for stamp, _, _ in self._heap)
