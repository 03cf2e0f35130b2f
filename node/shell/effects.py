"""Performing a durable outbox: messages to the peers' queues, replies to the clients'
connections, and each note to its metric and log line.

The round writer calls ``Effects.perform`` with a ``Durable`` only, so nothing here can run
before the round's records are on disk. Every note type has its handler (a missing one
is a ``KeyError`` at the first such note, found by the tests, not a silent no-op).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from node.consensus.events import (
    Broadcast,
    CheckpointStable,
    Executed,
    FetchState,
    Rejected,
    RolledBack,
    StateTransferred,
    ViewChanged,
    ViewChangeStarted,
)
from node.observability.metrics import ReplicaMetrics
from node.shell.admission import Admission
from node.shell.client_routes import ClientRoutes
from node.shell.guard import GuardSet
from node.shell.peer_traffic import PeerTraffic
from node.shell.round_writer import Durable

log = logging.getLogger("bft.replica")

#: the core's rejection reasons that are evidence of a Byzantine peer, as the guards name it
EVIDENCE = {"bad_signature": "invalid_signature", "equivocation": "equivocation"}


class Effects:
    """The replica's side of a round: sends, replies, metrics and logs."""

    def __init__(
        self,
        me: int,
        traffic: PeerTraffic,
        routes: ClientRoutes,
        guards: GuardSet,
        metrics: ReplicaMetrics,
        admission: Admission,
        fetch: Callable[[int], None],
        after: Callable[[], None],
    ) -> None:
        self.me = me
        self.traffic = traffic
        self.routes = routes
        self.guards = guards
        self.metrics = metrics
        self.admission = admission
        self._fetch = fetch
        self._after = after
        self.requests_executed = 0
        self._notes: dict[type, Callable[[Any], None]] = {
            Executed: self._executed,
            RolledBack: self._rolled_back,
            FetchState: lambda note: self._fetch(note.seq),
            ViewChanged: self._view_changed,
            ViewChangeStarted: self._view_change_started,
            CheckpointStable: self._checkpoint_stable,
            StateTransferred: self._state_transferred,
            Rejected: self._rejected,
        }

    def perform(self, durable: Durable) -> None:
        """The outbox of a round whose records are durable."""
        outbox = durable.outbox
        traffic = self.traffic
        for message in outbox.messages:
            if type(message) is Broadcast:
                traffic.broadcast(message.msg)
            else:
                traffic.enqueue(message.to, message.msg)
        routes = self.routes
        for reply in outbox.replies:
            routes.reply(reply.client, reply.reply)
        notes = self._notes
        for note in outbox.notes:
            notes[type(note)](note)
        routes.send()
        traffic.flush()
        self._after()

    def _executed(self, note: Executed) -> None:
        self.metrics.requests_executed.inc(note.n_requests)
        self.requests_executed += note.n_requests
        self.admission.executed(note.n_requests, trio.current_time())
        self.traffic.note_progress()

    def _rolled_back(self, note: RolledBack) -> None:
        self.metrics.rollbacks.inc()
        log.info(
            "event=tentative_rolled_back replica=%d seq=%d view=%d reason=%s",
            self.me,
            note.seq,
            note.view,
            note.reason,
        )

    def _view_changed(self, note: ViewChanged) -> None:
        self.metrics.view_changes.inc()
        log.info(
            "event=view_change replica=%d view=%d primary=%d", self.me, note.view, note.primary
        )

    def _view_change_started(self, note: ViewChangeStarted) -> None:
        log.info(
            "event=view_change_started replica=%d view=%d target=%d reason=%s",
            self.me,
            note.view,
            note.target,
            note.reason,
        )

    def _checkpoint_stable(self, note: CheckpointStable) -> None:
        log.debug("event=checkpoint_stable replica=%d seq=%d", self.me, note.seq)

    def _state_transferred(self, note: StateTransferred) -> None:
        self.metrics.state_transfers.inc()
        self.traffic.note_progress()
        log.info("event=state_transferred replica=%d seq=%d", self.me, note.seq)

    def _rejected(self, note: Rejected) -> None:
        sender = note.sender
        peer = str(sender) if isinstance(sender, int) else "client"
        self.metrics.invalid.labels(peer, note.reason).inc()
        if isinstance(sender, int) and note.reason in EVIDENCE:
            self.guards.record_evidence(peer, EVIDENCE[note.reason])
        log.debug("event=rejected sender=%s reason=%s", sender, note.reason)
