"""Seeded discrete-event scheduler: one queue ordered by (virtual time, tiebreak).

The simulator owns a single `EventQueue`. Every pending thing (a message in flight, a
timer, a crash, a partition, the global stabilisation time) is an entry with a virtual
due time. Entries due at the same instant are ordered by a tiebreak drawn from the
schedule's seeded `random.Random`, so equal-time events are reordered differently per
seed but identically on replay. No wall clock is read anywhere.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

import attrs


@attrs.define(order=False)
class Entry:
    """One scheduled item: `payload` becomes due at virtual time `due`."""

    due: float
    tiebreak: float
    counter: int
    payload: Any
    cancelled: bool = False

    def key(self) -> tuple[float, float, int]:
        return (self.due, self.tiebreak, self.counter)


class EventQueue:
    """A deterministic priority queue of `Entry` on a virtual clock."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._heap: list[tuple[tuple[float, float, int], Entry]] = []
        self._counter = 0
        self.now = 0.0
        self.popped = 0

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, delay: float, payload: Any) -> Entry:
        """Queue `payload` to become due `delay` virtual seconds from now."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        return self.schedule_at(self.now + delay, payload)

    def schedule_at(self, due: float, payload: Any) -> Entry:
        """Queue `payload` at absolute virtual time `due` (never in the past)."""
        self._counter += 1
        entry = Entry(max(due, self.now), self._rng.random(), self._counter, payload)
        heapq.heappush(self._heap, (entry.key(), entry))
        return entry

    def pop(self) -> Entry | None:
        """Remove and return the next live entry, advancing the clock; None if empty."""
        while self._heap:
            _, entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            self.now = entry.due
            self.popped += 1
            return entry
        return None

    def peek_time(self) -> float | None:
        """Due time of the next live entry, without removing it."""
        while self._heap and self._heap[0][1].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][1].due if self._heap else None
