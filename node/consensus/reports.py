"""What the peers say about themselves, and what this replica is fetching.

``PeerReports`` owns the latest view and last-executed sequence number each peer reported
(``Status`` messages and valid checkpoint votes), when each peer was last heard from, the
status-interval counter those are measured in, the rate limit on ``NewView``s resent to one
laggard, and the fetch in progress. The reports are hints, never proof (``sync.py`` says
how they are used); every table is bounded by the number of replicas.
"""

from __future__ import annotations


class PeerReports:
    def __init__(self) -> None:
        self.executed: dict[int, int] = {}
        self.views: dict[int, int] = {}
        #: status intervals so far
        self.tick = 0
        #: peer -> the tick in which this replica last received anything from it
        self._heard: dict[int, int] = {}
        #: what f+1 peers reported at the previous tick, while this replica was behind it
        self.lag_mark: int | None = None
        #: restarted and not yet level with the others: fetch without waiting
        self.recovering = False
        #: peer -> (view, tick) of the last NewView sent to it
        self._nv_resent: dict[int, tuple[int, int]] = {}
        #: the sequence number this replica is fetching up to, if any
        self.fetching: int | None = None

    def heard(self, peer: int) -> None:
        self._heard[peer] = self.tick

    def status(self, peer: int, view: int, last_executed: int) -> None:
        self.views[peer] = view
        self.executed[peer] = last_executed

    def executed_at_least(self, peer: int, seq: int) -> None:
        if seq > self.executed.get(peer, 0):
            self.executed[peer] = seq

    def heard_recently(self) -> int:
        """Peers heard from in this status interval or the previous one."""
        recent = self.tick - 1
        return sum(1 for tick in self._heard.values() if tick >= recent)

    def executed_by(self, k: int) -> int:
        """The highest sequence number at least ``k`` peers report having executed; 0
        until ``k`` peers reported."""
        values = sorted(self.executed.values(), reverse=True)
        return values[k - 1] if len(values) >= k else 0

    def highest_executed(self) -> int:
        return max(self.executed.values(), default=0)

    def may_resend_new_view(self, peer: int, view: int) -> bool:
        """At most one ``NewView`` of ``view`` to ``peer`` per status interval."""
        mark = (view, self.tick)
        if self._nv_resent.get(peer) == mark:
            return False
        self._nv_resent[peer] = mark
        return True

    def want(self, target: int, again: bool) -> int | None:
        """A fetch up to ``target`` is wanted: the target to ask for, or ``None`` when
        one at least as far is already under way (``again`` asks anyway)."""
        if self.fetching is None or target > self.fetching or again:
            self.fetching = max(target, self.fetching or 0)
            return self.fetching
        return None

    def reached(self, last_executed: int) -> None:
        if self.fetching is not None and last_executed >= self.fetching:
            self.fetching = None
