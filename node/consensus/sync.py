"""View and log synchronisation, mixed into ``ReplicaCore``: how a replica that fell behind
(restarted, cut off by a partition, or simply slower) finds its way back, with proof.

Every ``status_interval_s`` (the ``"status"`` timer) a replica broadcasts a ``Status`` (its
view, last executed and stable checkpoint) and, while it is changing views, its own
``ViewChange`` again, so a view change whose messages were lost still gathers its quorum
once the network heals. From the peers' reports (and their checkpoint votes):

- a peer in an older view gets this replica's ``NewView`` (at most once per peer and
  status interval). It checks it as it checks any ``NewView`` (2f+1 valid view changes,
  the re-issued pre-prepares recomputed) and joins: a replica that missed view changes or
  restarted in an old view rejoins without a view change of its own. A Byzantine peer can
  only hand it a view that 2f+1 replicas asked for.
- when a peer reports having executed beyond this replica, it fetches what it lacks
  (``FetchState``; the answers are commit certificates and certified checkpoints, checked
  one by one): at once if it has just restarted or is a checkpoint interval or more
  behind, otherwise when the gap outlives a status interval (under load peers are always
  a little ahead). One peer is enough: after a lossy spell the only replica that
  gathered the last commits may be a single correct one.
- while f+1 peers report being ahead (so at least one correct replica is), a request
  timer that fires re-arms and fetches instead of starting a view change: a replica that
  is behind cannot tell a faulty primary from its own missing log, and the others are
  making progress. A lying peer alone cannot hold a view change off.
- a replica that heard from fewer than 2f peers in the last two status intervals does not
  start a view change when a request timer fires (it re-arms it): it is cut off, and a
  view change that cannot gather 2f + 1 votes would only strand it in a view the others
  never enter. After GST every correct replica hears the 2f other correct ones, so this
  delays no view change that could succeed.

The reports are hints, never proof: a lying peer can make a replica fetch (and find
nothing better than it has) or send it a ``NewView`` it already had, nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.events import STATUS_TIMER, Action, FetchState, Send
from node.protocol.messages import Status

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore


class SyncMixin:
    @property
    def fetching(self: ReplicaCore) -> int | None:
        """The sequence number a fetch should reach; ``None`` when none is wanted."""
        return self._reports.fetching

    def start(self: ReplicaCore) -> list[Action]:
        """The actions that start a fresh core (its status timer); ``recover`` includes
        them. A core that is never started still works, without status messages."""
        self._out = out = []
        self._arm_status()
        self._out = []
        return out

    def _arm_status(self: ReplicaCore) -> None:
        if self.cfg.status_interval_s > 0:
            self._start_timer(STATUS_TIMER, self.cfg.status_interval_s)

    # --- the status timer and what peers report -------------------------------------------

    def _on_status_tick(self: ReplicaCore) -> None:
        self._reports.tick += 1
        self._broadcast(Status(self.me, self.view, self.last_executed, self.stable_checkpoint))
        if self._vs.changing:
            own = self._vcs.for_view(self._vs.target).get(self.me)
            if own is not None:
                self._broadcast(own)
        self._check_behind(tick=True)
        self._arm_status()

    def _on_status(self: ReplicaCore, sender: int, status: Status) -> None:
        self._reports.status(sender, status.view, status.last_executed)
        if status.view < self.view:
            self._help_laggard(sender)
        self._check_behind(tick=False)

    def _help_laggard(self: ReplicaCore, sender: int) -> None:
        """Send the proof of this replica's view to a peer that is in an older one."""
        nv = self._vcs.new_view
        if nv is None or nv.view != self.view:
            return
        if self._reports.may_resend_new_view(sender, nv.view):
            self._emit(Send(sender, nv))

    # --- falling behind and catching up ---------------------------------------------------

    def _cut_off(self: ReplicaCore) -> bool:
        """Fewer than 2f peers heard from in this status interval or the previous one."""
        if self.cfg.status_interval_s <= 0 or self._reports.tick == 0:
            return False  # no status interval has passed yet: nothing to judge by
        return self._reports.heard_recently() < self.rules.quorum() - 1

    def _cluster_executed(self: ReplicaCore) -> int:
        """The highest sequence number that f+1 peers report having executed (so at least
        one correct replica did); 0 until f+1 peers reported."""
        return self._reports.executed_by(self.rules.weak_quorum())

    def _behind(self: ReplicaCore) -> bool:
        return self._cluster_executed() > self.last_executed

    def _check_behind(self: ReplicaCore, tick: bool) -> None:
        reports = self._reports
        target = reports.highest_executed()
        last = self.last_executed
        if target <= last:
            reports.lag_mark = None
            reports.recovering = False
            return
        urgent = reports.recovering or target - last >= self.cfg.checkpoint_interval
        lasting = reports.lag_mark is not None and last < reports.lag_mark
        if urgent or lasting:
            # on a tick, ask again even for the same target: the shell may have given up
            self._request_fetch(target, again=tick)
            reports.recovering = False
        if tick:
            reports.lag_mark = target

    def _request_fetch(self: ReplicaCore, target: int, again: bool = False) -> None:
        wanted = self._reports.want(target, again)
        if wanted is not None:
            self._emit(FetchState(wanted))

    def _fetch_progress(self: ReplicaCore) -> None:
        self._reports.reached(self.last_executed)
