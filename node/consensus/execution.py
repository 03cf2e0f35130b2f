"""The replicated state and how far it has come: the app, the client table and
``last_executed``.

An ``Executor`` is the only writer of the three. ``execute`` runs one committed batch in
order, at most once per ``(client session, timestamp)`` (the rule is the injected
``Rules.classify``), records each result in the client table and says what to tell each
client; ``restore`` replaces the whole state by a snapshot (a restart from the stable
checkpoint, or a state transfer); ``snapshot`` encodes the state for a checkpoint.
"""

from __future__ import annotations

import attrs

from node.app.base import App
from node.consensus.clients import (
    NEW,
    RETRANSMISSION,
    ClientTable,
    decode_snapshot,
    encode_snapshot,
)
from node.consensus.rules import Rules
from node.protocol.messages import PrePrepare


@attrs.frozen
class Outcome:
    """One request of an executed batch: a fresh ``result``, or ``None`` when the request
    was a retransmission (answer it from the reply cache) or stale (say nothing)."""

    client: str
    timestamp: int
    result: bytes | None
    retransmission: bool = False


class Executor:
    def __init__(self, app: App, rules: Rules) -> None:
        self.app = app
        self.clients = ClientTable()
        self.last_executed = 0
        self._rules = rules

    def execute(self, pp: PrePrepare) -> list[Outcome]:
        """Execute the batch of ``pp`` (the next sequence number)."""
        outcomes = []
        clients = self.clients
        for req in pp.batch:
            client, ts = req.client, req.timestamp
            status = self._rules.classify(clients, client, ts)
            if status == NEW:
                result = self.app.apply(req.operation)
                clients.record(client, ts, result)
                outcomes.append(Outcome(client, ts, result))
            else:
                outcomes.append(Outcome(client, ts, None, status == RETRANSMISSION))
        self.last_executed = pp.seq
        return outcomes

    def snapshot(self) -> bytes:
        """The encoded app state and client table (what a checkpoint digests)."""
        return encode_snapshot(self.app.snapshot(), self.clients)

    def restore(self, seq: int, snapshot: bytes) -> None:
        """Replace the state by ``snapshot`` taken after ``seq``; ``ValueError`` if it is
        not a core snapshot (the state is then unchanged)."""
        app_snapshot, clients = decode_snapshot(snapshot)
        self.app.restore(app_snapshot)
        self.clients = clients
        self.last_executed = seq
