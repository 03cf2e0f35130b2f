"""Snapshots beside the log: a stable checkpoint is recorded without its snapshot, which
is read back (and checked) at start-up; a missing or wrong one is a clear error."""

from __future__ import annotations

import sqlite3

import pytest

from node.consensus.clients import snapshot_digest
from node.consensus.messages import Checkpoint, Prepare
from node.consensus.records import MessageRecord, StableRecord
from node.persistence import load_state, write_round
from node.storage import Storage, StorageError

D = bytes(32)


def stable(seq: int, snapshot: bytes) -> StableRecord:
    proof = tuple(Checkpoint(seq, snapshot_digest(snapshot), i, bytes(64)) for i in range(3))
    return StableRecord(seq, snapshot_digest(snapshot), snapshot, proof)


def prepare(seq: int) -> MessageRecord:
    return MessageRecord(Prepare(0, seq, D, 1, bytes(64)))


def test_the_log_keeps_a_reference_and_the_snapshot_comes_back(tmp_path) -> None:
    storage = Storage(tmp_path, b"r0")
    big = b"snapshot" * 100_000
    write_round(storage, [prepare(9), prepare(11), stable(10, big), prepare(12)])
    raw = sqlite3.connect(tmp_path / "replica.db").execute(
        "SELECT length(value) FROM meta WHERE name='stable'"
    )
    assert raw.fetchone()[0] < 1000  # the 800 KB snapshot is not in the log database
    state = load_state(storage)
    assert state is not None and state.stable_seq == 10 and state.snapshot == big
    assert sorted(r.seq for r in state.records) == [11, 12]


def test_a_snapshot_saved_ahead_is_not_written_twice_and_old_ones_are_pruned(tmp_path) -> None:
    storage = Storage(tmp_path, b"r0")
    first, second = stable(10, b"a" * 1000), stable(20, b"b" * 1000)
    storage.put_snapshot(10, first.digest, first.snapshot)
    storage.put_snapshot(20, second.digest, second.snapshot)  # taken, not stable yet
    write_round(storage, [first])
    assert storage.snapshot_seqs() == [10, 20]
    write_round(storage, [second])
    assert storage.snapshot_seqs() == [20]
    assert load_state(storage).snapshot == b"b" * 1000


def test_a_stale_snapshot_with_another_digest_is_replaced(tmp_path) -> None:
    storage = Storage(tmp_path, b"r0")
    storage.put_snapshot(10, bytes(32), b"what this replica computed, wrongly")
    certified = stable(10, b"the certified state")
    write_round(storage, [certified])
    assert load_state(storage).snapshot == b"the certified state"


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_missing_or_altered_snapshot_is_a_clear_error(tmp_path, damage: str) -> None:
    storage = Storage(tmp_path, b"r0")
    write_round(storage, [stable(10, b"state at 10")])
    db = sqlite3.connect(tmp_path / "snapshots.db", isolation_level=None)
    if damage == "missing":
        db.execute("DELETE FROM snapshot")
    else:
        db.execute("UPDATE snapshot SET data = ?", (b"state at 11",))
    db.close()
    with pytest.raises(StorageError, match="snapshot of stable checkpoint 10"):
        load_state(storage)


def test_asking_without_waiting_never_blocks_on_a_snapshot_being_written(tmp_path) -> None:
    storage = Storage(tmp_path, b"r0")
    rec = stable(10, b"state")
    storage.put_snapshot(10, rec.digest, rec.snapshot)
    assert storage.has_snapshot(10, rec.digest, wait=False)
    with storage._snap_lock:  # another thread is writing a snapshot
        assert not storage.has_snapshot(10, rec.digest, wait=False)
    assert storage.has_snapshot(10, rec.digest)
