"""Snapshots beside the log: a stable checkpoint is recorded without its snapshot, which
is read back (and checked) at start-up; a missing or wrong one is a clear error."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from node.consensus.clients import snapshot_digest
from node.consensus.records import MessageRecord, StableRecord
from node.protocol.messages import Checkpoint, Prepare
from node.storage import Storage, StorageError
from node.storage.persistence import load_state, write_round

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


def test_an_own_snapshot_written_late_never_replaces_the_certified_one(tmp_path) -> None:
    storage = Storage(tmp_path, b"r0")
    certified = stable(10, b"the certified state")  # fetched by state transfer
    write_round(storage, [certified])
    storage.put_snapshot(10, snapshot_digest(b"wrong"), b"wrong")  # the saver, late
    assert load_state(storage).snapshot == b"the certified state"
    assert load_state(Storage(tmp_path, b"r0")).snapshot == b"the certified state"


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


def test_the_event_loop_never_waits_for_a_snapshot_being_written(tmp_path) -> None:
    storage = Storage(tmp_path, b"r0")
    first, second = stable(10, b"a"), stable(20, b"b")
    storage.put_snapshot(10, first.digest, first.snapshot)

    def event_loop_side() -> None:
        assert storage.has_snapshot(10, first.digest)  # answered from memory
        write_round(storage, [first])  # saved already: no snapshot write, no wait
        storage.prune_snapshots(below=10, wait=False)  # busy: skipped, not waited for

    with storage._snap_lock:  # the saver thread is writing another snapshot
        done = threading.Thread(target=event_loop_side)
        done.start()
        done.join(timeout=5)
        assert not done.is_alive(), "waited for the snapshot lock"
    storage.put_snapshot(20, second.digest, second.snapshot)
    write_round(storage, [second])
    assert storage.snapshot_seqs() == [20]
    reopened = Storage(tmp_path, b"r0")  # what is stored is known again after a restart
    assert reopened.has_snapshot(20, second.digest) and not reopened.has_snapshot(10, first.digest)
