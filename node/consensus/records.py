"""Durable records the core asks the shell to persist, and what storage does with them.

Every record has a stable ``key`` (str) and a ``seq`` (int). Storage rules:

=================  =========================================================================
``ViewRecord``     key ``"view"``: insert or replace. Never deleted.
``NewViewRecord``  key ``"new_view"``: insert or replace. Never deleted. The ``NewView``
                   of the view this replica entered last, kept so that after a restart
                   it can still show a replica in an older view the proof of its view.
``StableRecord``   key ``"stable"``: insert or replace; then delete every ``MessageRecord``
                   with ``seq <= record.seq`` (garbage collection of the log).
``MessageRecord``  key ``"<kind>/<view>/<seq>/<sender>"``: insert or replace (a key always
                   names the same message). Deleted by the rule above.
=================  =========================================================================

Records of one ``handle`` round must be written atomically, in order, before any later
action of that round is performed. ``encode_record``/``decode_record`` give each record a
byte form (msgpack; messages inside use the codec), and ``StoredState.from_records``
applies the rules above in memory (what an SQLite store does with tables).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import msgpack

from node.protocol import codec
from node.protocol.messages import Checkpoint, Commit, NewView, Prepare, PrePrepare
from node.protocol.strict import unpack

_KIND = {PrePrepare: "pre_prepare", Prepare: "prepare", Commit: "commit"}


@attrs.frozen
class ViewRecord:
    """The view this replica is in and, if it has sent a view change, the view it is
    changing to (it must not accept messages of earlier views after a restart)."""

    view: int
    view_change_to: int | None = None

    @property
    def key(self) -> str:
        return "view"

    @property
    def seq(self) -> int:
        return 0


@attrs.frozen
class NewViewRecord:
    """The ``NewView`` that let this replica enter its current view."""

    new_view: NewView

    @property
    def key(self) -> str:
        return "new_view"

    @property
    def seq(self) -> int:
        return 0


@attrs.frozen
class StableRecord:
    """The stable checkpoint: core snapshot and ``2f + 1`` signed checkpoints (empty for 0)."""

    seq: int
    digest: bytes
    snapshot: bytes
    proof: tuple[Checkpoint, ...] = ()

    @property
    def key(self) -> str:
        return "stable"


@attrs.frozen
class MessageRecord:
    """An accepted pre-prepare, or a prepare or commit (own or received) in the log."""

    msg: PrePrepare | Prepare | Commit

    @property
    def key(self) -> str:
        m = self.msg
        return f"{_KIND[type(m)]}/{m.view}/{m.seq}/{m.sender}"

    @property
    def seq(self) -> int:
        return self.msg.seq


Record = ViewRecord | NewViewRecord | StableRecord | MessageRecord


def encode_record(record: Record) -> bytes:
    if isinstance(record, MessageRecord):
        return msgpack.packb(["message", codec.encode(record.msg)])
    if isinstance(record, ViewRecord):
        return msgpack.packb(["view", record.view, record.view_change_to])
    if isinstance(record, NewViewRecord):
        return msgpack.packb(["new_view", codec.encode(record.new_view)])
    return msgpack.packb(
        [
            "stable",
            record.seq,
            record.digest,
            record.snapshot,
            [codec.encode(cp) for cp in record.proof],
        ]
    )


def decode_record(data: bytes) -> Record:
    """Inverse of ``encode_record``; raises ``ValueError`` on anything else."""
    try:
        obj = unpack(data)
        kind = obj[0]
        if kind == "message" and len(obj) == 2:
            msg = codec.decode(obj[1])
            if isinstance(msg, PrePrepare | Prepare | Commit):
                return MessageRecord(msg)
        elif kind == "view" and len(obj) == 3:
            if type(obj[1]) is int and (obj[2] is None or type(obj[2]) is int):
                return ViewRecord(obj[1], obj[2])
        elif kind == "new_view" and len(obj) == 2:
            msg = codec.decode(obj[1])
            if isinstance(msg, NewView):
                return NewViewRecord(msg)
        elif kind == "stable" and len(obj) == 5:
            proof = tuple(codec.decode(b) for b in obj[4])
            if (
                type(obj[1]) is int
                and type(obj[2]) is bytes
                and type(obj[3]) is bytes
                and all(isinstance(cp, Checkpoint) for cp in proof)
            ):
                return StableRecord(obj[1], obj[2], obj[3], proof)  # type: ignore[arg-type]
    except Exception:  # any parse failure below means "not a record"
        pass
    raise ValueError("not a stored record")


@attrs.define
class StoredState:
    """What storage hands back at start-up: everything ``Persist`` wrote, after the rules."""

    view: int = 0
    view_change_to: int | None = None
    new_view: NewView | None = None
    stable_seq: int = 0
    snapshot: bytes | None = None
    proof: tuple[Checkpoint, ...] = ()
    records: list[MessageRecord] = attrs.Factory(list)

    @classmethod
    def from_records(cls, records: Iterable[Record]) -> StoredState:
        """Apply the storage rules to ``records`` in order (an in-memory store)."""
        state = cls()
        messages: dict[str, MessageRecord] = {}
        for record in records:
            if isinstance(record, ViewRecord):
                state.view, state.view_change_to = record.view, record.view_change_to
            elif isinstance(record, NewViewRecord):
                state.new_view = record.new_view
            elif isinstance(record, StableRecord):
                state.stable_seq, state.snapshot = record.seq, record.snapshot
                state.proof = record.proof
                messages = {k: r for k, r in messages.items() if r.seq > record.seq}
            else:
                messages[record.key] = record
        # rows written after their checkpoint became stable (a shell may group writes)
        # are garbage as well
        state.records = [r for r in messages.values() if r.seq > state.stable_seq]
        return state
