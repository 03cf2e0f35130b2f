"""The replicated state and how far it has come: the app, the client table and
``last_executed``.

An ``Executor`` is the only writer of the three. ``execute`` runs one committed batch in
order, at most once per ``(client session, timestamp)`` (the rule is the injected
``Rules.classify``), records each result in the client table and says what to tell each
client; ``restore`` replaces the whole state by a snapshot (a restart from the stable
checkpoint, or a state transfer); ``snapshot`` encodes the state for a checkpoint.

Tentative execution: ``execute(pp, tentative=True)`` runs the batch at ``last_executed + 1``
inside an app savepoint, remembering the client-table rows it replaces, and leaves
``last_executed`` where it is. At most one batch is tentative. When that sequence number
commits, ``settle`` keeps the execution if the committed batch is the same one (and moves
``last_executed``), or undoes it; ``roll_back`` undoes it outright (a view change).
Undoing restores the app, the client table and so the digest exactly.
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


@attrs.frozen
class Tentative:
    """The batch executed before it committed, and how to undo it."""

    seq: int
    view: int
    digest: bytes
    #: client -> its row before the batch (None: the client had none)
    rows: dict[str, tuple[int, bytes] | None]
    executed: int  # requests that ran (not retransmissions or stale ones)


class Executor:
    def __init__(self, app: App, rules: Rules) -> None:
        self.app = app
        self.clients = ClientTable()
        self.last_executed = 0
        self.tentative: Tentative | None = None
        self._rules = rules

    def execute(self, pp: PrePrepare, tentative: bool = False) -> list[Outcome]:
        """Execute the batch of ``pp`` (the next sequence number); with ``tentative``,
        so that it can be undone, leaving ``last_executed`` as it is."""
        if self.tentative is not None:
            raise RuntimeError(f"seq {self.tentative.seq} is still tentative")
        outcomes = []
        clients = self.clients
        rows: dict[str, tuple[int, bytes] | None] = {}
        ran = 0
        if tentative:
            self.app.savepoint()
        for req in pp.batch:
            client, ts = req.client, req.timestamp
            status = self._rules.classify(clients, client, ts)
            if status == NEW:
                ran += 1
                if tentative and client not in rows:
                    rows[client] = clients.cached(client)
                result = self.app.apply(req.operation)
                clients.record(client, ts, result)
                outcomes.append(Outcome(client, ts, result))
            else:
                outcomes.append(Outcome(client, ts, None, status == RETRANSMISSION))
        if tentative:
            self.tentative = Tentative(pp.seq, pp.view, pp.digest, rows, ran)
        else:
            self.last_executed = pp.seq
        return outcomes

    def settle(self, pp: PrePrepare) -> bool:
        """``pp`` committed at ``last_executed + 1``: True if it is the tentative batch
        (now executed for good), False if nothing was tentative or it was another batch
        (undone: execute ``pp`` now)."""
        held = self.tentative
        if held is None:
            return False
        if held.seq == pp.seq and held.digest == pp.digest:
            self.tentative = None
            self.app.release()
            self.last_executed = pp.seq
            return True
        self.roll_back()
        return False

    def roll_back(self) -> Tentative | None:
        """Undo the tentative batch, if any; return what was undone."""
        held = self.tentative
        if held is None:
            return None
        self.tentative = None
        self.app.rollback()
        for client, row in held.rows.items():
            self.clients.restore_row(client, row)
        return held

    def snapshot(self) -> bytes:
        """The encoded app state and client table (what a checkpoint digests)."""
        if self.tentative is not None:
            raise RuntimeError("a snapshot with a tentative batch applied")
        return encode_snapshot(self.app.snapshot(), self.clients)

    def restore(self, seq: int, snapshot: bytes) -> None:
        """Replace the state by ``snapshot`` taken after ``seq``; ``ValueError`` if it is
        not a core snapshot (the state is then unchanged)."""
        app_snapshot, clients = decode_snapshot(snapshot)
        self.app.restore(app_snapshot)
        self.tentative = None  # the app dropped its savepoint with its state
        self.clients = clients
        self.last_executed = seq
