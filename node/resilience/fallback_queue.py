"""Fallback queue: the messages waiting for one peer whose circuit is open (or failed).

Bounded (`max_queue`), ordered by priority (higher first) then age (older first).
- Full: the lowest-priority, oldest item among the queue and the newcomer is dropped and
  counted in `dropped_full` (so a newcomer below everything queued is refused).
- Supersession: an item with a `key` replaces the queued item with the same key (a newer
  checkpoint, a view change for a higher view); the old one is counted in `superseded`.
- Retries: an item carries its failed attempts; `requeue(item)` after a failed send adds
  one, and an item that has failed `max_retries` times is dropped (`dropped_retries`).
  A requeued item keeps its age, so it goes back in front of newer items of its priority.

Layout: one insertion-ordered lane (OrderedDict seq -> item) per priority plus a key
index, so push, pop, supersede and drop-oldest are O(1) plus O(number of priorities).
An optional `on_drop(reason, item)` callback reports every drop ("full", "retries",
"superseded").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import attrs

from node.resilience.settings import FallbackConfig

__all__ = ["DropListener", "FallbackQueue", "QueuedItem"]

DropListener = Callable[[str, "QueuedItem"], None]


@attrs.define(eq=False)
class QueuedItem:
    """One queued message. `seq` orders items by age (smaller is older)."""

    payload: Any
    priority: int
    key: Hashable | None
    seq: int
    enqueued_at: float
    attempts: int = 0


class FallbackQueue:
    """A bounded priority queue with supersession and a retry limit."""

    def __init__(
        self,
        config: FallbackConfig,
        *,
        peer: str = "",
        on_drop: DropListener | None = None,
    ) -> None:
        if not isinstance(config, FallbackConfig):
            raise TypeError(f"config must be a FallbackConfig, got {type(config).__name__}")
        self.config = config
        self.peer = peer
        self.on_drop = on_drop
        self._lanes: dict[int, OrderedDict[int, QueuedItem]] = {}
        self._by_key: dict[Hashable, QueuedItem] = {}
        self._len = 0
        self._seq = 0
        self.pushed = 0
        self.dropped_full = 0
        self.dropped_retries = 0
        self.superseded = 0

    # -- mutation -------------------------------------------------------------------

    def push(
        self,
        payload: Any,
        *,
        priority: int = 0,
        key: Hashable | None = None,
        now: float = 0.0,
        attempts: int = 0,
    ) -> bool:
        """Queue a new item; False if it was itself dropped (full or out of retries)."""
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"priority must be an int, got {priority!r}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ValueError(f"attempts must be a non-negative int, got {attempts!r}")
        self._seq += 1
        item = QueuedItem(payload, priority, key, self._seq, now, attempts)
        self.pushed += 1
        if attempts >= self.config.max_retries:
            self._dropped("retries", item)
            return False
        return self._insert(item)

    def pop(self) -> QueuedItem | None:
        """Remove and return the highest-priority, oldest item (None if empty)."""
        if not self._lanes:
            return None
        priority = max(self._lanes)
        lane = self._lanes[priority]
        _, item = lane.popitem(last=False)
        if not lane:
            del self._lanes[priority]
        self._unindex(item)
        self._len -= 1
        return item

    def requeue(self, item: QueuedItem, *, failed: bool = True) -> bool:
        """Put back an item taken by `pop`.

        `failed=True` counts a failed attempt (dropped once it reaches `max_retries`);
        `failed=False` returns it untouched (e.g. the send was abandoned). False if the
        item did not go back (out of retries, superseded meanwhile, or queue full).
        """
        lane = self._lanes.get(item.priority)
        if lane is not None and item.seq in lane:
            raise ValueError("item is already queued")
        if failed:
            item.attempts += 1
            if item.attempts >= self.config.max_retries:
                self._dropped("retries", item)
                return False
        return self._insert(item)

    def supersede(self, key: Hashable, *, up_to_seq: int | None = None) -> bool:
        """Drop the queued item with `key` (counted superseded), e.g. because a newer
        message with that key was delivered directly. With `up_to_seq`, only an item
        no newer than that seq is dropped. True if one was dropped."""
        item = self._by_key.get(key)
        if item is None or (up_to_seq is not None and item.seq > up_to_seq):
            return False
        self._remove(item)
        self._dropped("superseded", item)
        return True

    def clear(self) -> int:
        """Remove every item without counting it as dropped; returns how many."""
        removed = self._len
        self._lanes.clear()
        self._by_key.clear()
        self._len = 0
        return removed

    # -- views ----------------------------------------------------------------------

    def peek(self) -> QueuedItem | None:
        """The item `pop` would return, left in place."""
        if not self._lanes:
            return None
        lane = self._lanes[max(self._lanes)]
        return next(iter(lane.values()))

    def items(self) -> list[QueuedItem]:
        """Every queued item in pop order."""
        return [item for p in sorted(self._lanes, reverse=True) for item in self._lanes[p].values()]

    @property
    def last_seq(self) -> int:
        """The seq given to the most recent push (0 before any)."""
        return self._seq

    def counters(self) -> dict[str, int]:
        return {
            "queued": self._len,
            "pushed": self.pushed,
            "dropped_full": self.dropped_full,
            "dropped_retries": self.dropped_retries,
            "superseded": self.superseded,
        }

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[QueuedItem]:
        return iter(self.items())

    def __repr__(self) -> str:
        return f"<FallbackQueue peer={self.peer!r} len={self._len} {self.counters()}>"

    # -- internals ------------------------------------------------------------------

    def _insert(self, item: QueuedItem) -> bool:
        if item.key is not None:
            current = self._by_key.get(item.key)
            if current is not None:
                if current.seq > item.seq:  # a newer message with this key is queued
                    self._dropped("superseded", item)
                    return False
                self._remove(current)
                self._dropped("superseded", current)
        if self._len >= self.config.max_queue:
            victim_lane = self._lanes[min(self._lanes)]
            victim = next(iter(victim_lane.values()))
            if (item.priority, item.seq) < (victim.priority, victim.seq):
                self._dropped("full", item)
                return False
            self._remove(victim)
            self._dropped("full", victim)
        lane = self._lanes.get(item.priority)
        if lane is None:
            lane = self._lanes[item.priority] = OrderedDict()
        if not lane or item.seq > next(reversed(lane)):
            lane[item.seq] = item
        elif item.seq < next(iter(lane)):
            lane[item.seq] = item
            lane.move_to_end(item.seq, last=False)
        else:  # rare: an old item going back between newer ones of its priority
            merged = sorted([*lane.values(), item], key=lambda queued: queued.seq)
            self._lanes[item.priority] = OrderedDict((queued.seq, queued) for queued in merged)
        if item.key is not None:
            self._by_key[item.key] = item
        self._len += 1
        return True

    def _remove(self, item: QueuedItem) -> None:
        lane = self._lanes[item.priority]
        del lane[item.seq]
        if not lane:
            del self._lanes[item.priority]
        self._unindex(item)
        self._len -= 1

    def _unindex(self, item: QueuedItem) -> None:
        if item.key is not None and self._by_key.get(item.key) is item:
            del self._by_key[item.key]

    def _dropped(self, reason: str, item: QueuedItem) -> None:
        if reason == "full":
            self.dropped_full += 1
        elif reason == "retries":
            self.dropped_retries += 1
        else:
            self.superseded += 1
        if self.on_drop is not None:
            self.on_drop(reason, item)
