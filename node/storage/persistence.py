"""Maps the core's durable records onto the SQLite store, and back at start-up.

The rules are the core's (`node.consensus.records`): the view and the stable checkpoint
are single rows (kept in the meta table), log messages are rows keyed by their record key
and deleted at or below the stable checkpoint. One `write_round` call is one transaction,
so the records of a core round become durable together, before the round's sends.

A stable checkpoint's snapshot goes to the snapshot store first (a no-op when the shell
already saved it there from the core's ``SnapshotTaken``); the log database then records
the checkpoint without the snapshot, and ``load_state`` puts it back, checked against the
checkpoint digest.

The shell may pass the records of several rounds at once (group commit): they are applied
in order, so a later record with the same key replaces an earlier one and a stable
checkpoint drops the rows at or below it, as if each round had been written alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from node.consensus.clients import snapshot_digest
from node.consensus.records import (
    MessageRecord,
    NewViewRecord,
    StableRecord,
    StoredState,
    ViewRecord,
    decode_record,
    encode_record,
)
from node.storage import LogRow, Storage, StorageError


def write_round(storage: Storage, records: Sequence[object]) -> None:
    """Make the records of one or more rounds durable in one transaction (blocking)."""
    rows: dict[bytes, LogRow] = {}
    meta: dict[str, bytes] = {}
    gc: int | None = None
    for rec in records:
        if isinstance(rec, MessageRecord):
            key = rec.key.encode()
            rows[key] = LogRow(key, rec.seq, "message", encode_record(rec))
        elif isinstance(rec, ViewRecord | NewViewRecord):
            meta[rec.key] = encode_record(rec)
        elif isinstance(rec, StableRecord):
            storage.put_snapshot(rec.seq, rec.digest, rec.snapshot)
            meta["stable"] = encode_record(attrs.evolve(rec, snapshot=b""))
            gc = rec.seq if gc is None else max(gc, rec.seq)
            # rows of this round at or below the new stable checkpoint are garbage too
            rows = {k: r for k, r in rows.items() if r.seq > rec.seq}
        else:
            raise TypeError(f"unknown record type {type(rec).__name__}")
    storage.write(rows.values(), meta=meta, gc_below_or_at=gc)
    if gc is not None:
        # never waits for a snapshot being written: the next stable checkpoint prunes then
        storage.prune_snapshots(below=gc, wait=False)


def _with_snapshot(storage: Storage, rec: object) -> object:
    """The stable record with its snapshot read back from the snapshot store."""
    if not isinstance(rec, StableRecord) or rec.snapshot:
        return rec
    data = storage.snapshot(rec.seq, rec.digest)
    if data is None or snapshot_digest(data) != rec.digest:
        raise StorageError(
            f"{storage.snapshots_path} lacks the snapshot of stable checkpoint {rec.seq} "
            "(or it does not match its digest)"
        )
    return attrs.evolve(rec, snapshot=data)


def load_state(storage: Storage) -> StoredState | None:
    """What the core needs to recover, or None for a fresh data dir (blocking)."""
    stored = storage.load()
    records: list[object] = []
    try:
        if "stable" in stored.meta:
            records.append(_with_snapshot(storage, decode_record(stored.meta["stable"])))
        for key in ("view", "new_view"):
            if key in stored.meta:
                records.append(decode_record(stored.meta[key]))
        for row in stored.rows:
            records.append(decode_record(row.data))
    except ValueError as exc:
        raise StorageError(
            f"{storage.path} holds a record this version cannot read: {exc}"
        ) from None
    if not records:
        return None
    return StoredState.from_records(records)  # type: ignore[arg-type]
