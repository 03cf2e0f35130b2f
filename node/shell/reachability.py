"""Degraded mode: whether enough peers are reachable for this replica to be in a quorum.

While the open circuits leave fewer than 2f reachable peers, the replica cannot be part
of a quorum; it answers clients at once with ``Refused("quorum unavailable")``, says so in
/status, keeps probing, and leaves the mode only when 2f circuits are closed again
(half-open probes do not count, so a replica that is cut off does not flip in and out of
the mode with every probe).
"""

from __future__ import annotations

import logging

from node.observability.metrics import ReplicaMetrics

log = logging.getLogger("bft.replica")


class Reachability:
    """Tracks degraded mode from the circuits' transitions."""

    def __init__(self, me: int, n_peers: int, f: int, metrics: ReplicaMetrics) -> None:
        self.me = me
        self.n_peers = n_peers
        self.needed = 2 * f
        self.metrics = metrics
        self.degraded = False

    def on_transition(self, peer: str, old: str, new: str, closed: int, opened: int) -> None:
        """A circuit moved from `old` to `new`; `closed` and `opened` count the circuits
        in those states after the move."""
        log.info("event=circuit replica=%d peer=%s from=%s to=%s", self.me, peer, old, new)
        reachable = self.n_peers - opened
        if self.degraded:  # out only once 2f circuits are closed, not merely probing
            degraded = closed < self.needed
        else:
            degraded = reachable < self.needed
        if degraded == self.degraded:
            return
        self.degraded = degraded
        log.warning(
            "event=%s replica=%d reachable_peers=%d needed=%d",
            "degraded" if degraded else "recovered",
            self.me,
            reachable,
            self.needed,
        )
        self.metrics.degraded.set(1 if degraded else 0)
