"""Simulated network: per-message delay, reordering, duplication, loss and partitions.

`NetworkModel.route(src, dst)` decides the fate of one message put on the wire at the
current virtual time: a list of delivery delays (empty = dropped, two or more =
duplicated). Independent random delays reorder messages. Before the global stabilisation
time (GST) the model drops, duplicates and partitions; after `stabilise()` it never drops,
never partitions, and keeps every delay within `max_delay_s` (the partial-synchrony
assumption that PBFT liveness needs). Endpoints are replica ids (ints) or client
session strings; a partition only separates replicas.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

Endpoint = int | str


@attrs.define
class NetworkParams:
    """Knobs of the unstable period; all probabilities are per message."""

    drop_p: float = 0.0
    dup_p: float = 0.0
    min_delay_s: float = 0.001
    max_delay_s: float = 0.05
    slow_p: float = 0.0  # chance of an extra long delay (reordering across rounds)
    slow_delay_s: float = 0.5


class NetworkModel:
    """Decides drop/duplicate/delay for each message; holds the current partition."""

    def __init__(self, rng: random.Random, params: NetworkParams) -> None:
        self._rng = rng
        self.params = params
        self.stable = False
        self._side: dict[int, int] = {}  # replica -> partition side; empty = connected
        self.dropped = 0
        self.duplicated = 0
        self.sent = 0

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut the replicas into the given groups (replicas not listed are isolated)."""
        if self.stable:
            return
        self._side = {}
        for side, group in enumerate(groups):
            for r in group:
                self._side[r] = side

    def heal(self) -> None:
        """Reconnect every replica."""
        self._side = {}

    @property
    def partitioned(self) -> bool:
        return bool(self._side)

    def stabilise(self) -> None:
        """GST: from now on no drops, no partitions, bounded delays."""
        self.stable = True
        self.heal()

    def connected(self, a: Endpoint, b: Endpoint) -> bool:
        """Whether a partition currently separates replicas `a` and `b`."""
        if not self._side or not isinstance(a, int) or not isinstance(b, int):
            return True
        return self._side.get(a, -1 - a) == self._side.get(b, -1 - b)

    def route(self, src: Endpoint, dst: Endpoint) -> list[float]:
        """Delivery delays for one message from `src` to `dst` sent now."""
        self.sent += 1
        p = self.params
        if not self.stable:
            if not self.connected(src, dst) or self._rng.random() < p.drop_p:
                self.dropped += 1
                return []
        delays = [self._delay()]
        if self._rng.random() < p.dup_p:
            self.duplicated += 1
            delays.append(self._delay())
        return delays

    def _delay(self) -> float:
        p = self.params
        d = self._rng.uniform(p.min_delay_s, p.max_delay_s)
        if not self.stable and self._rng.random() < p.slow_p:
            d += self._rng.uniform(0.0, p.slow_delay_s)
        return d
