"""SQLite storage for one replica: the log above the stable checkpoint, the stable
checkpoint's snapshot and proof, and the current view.

Durability. The database runs in WAL mode with ``synchronous=FULL``: every transaction
fsyncs the WAL before ``commit`` returns. The shell writes the records of one or more core
rounds in one transaction *before* it sends anything that depends on them (a prepare, a
commit, a checkpoint, a reply), so nothing a replica has acknowledged can be lost by
``kill -9`` of the process or by a power cut. (``synchronous=NORMAL`` would already
survive ``kill -9``, because the WAL writes sit in the OS page cache, but not a host
crash. The fsync takes 0.2 ms to a few ms under load here; the shell does it off the event
loop and groups the rounds that pile up meanwhile, so we keep FULL.)

Snapshots live in a second database, ``snapshots.db`` (same settings), one row per
checkpoint sequence number with its digest. The shell writes a replica's own snapshot
there as soon as the core takes it, in the background and without holding the log's
lock, so the transaction that later records the checkpoint as stable (and garbage-collects
the log) carries only a reference and no longer stalls the writes behind it.
``put_snapshot`` must return before a stable record naming that snapshot is written;
``prune_snapshots`` drops the ones below the durable stable checkpoint. Snapshots are
keyed by sequence number and digest, and which ones are stored is also kept in memory, so
the event loop can ask without waiting for a thread that is writing one.

The store is generic: rows are ``(key, seq, kind, data)`` blobs chosen by the caller, so
this module knows nothing of message types. ``write`` applies puts, meta updates and a
garbage collection below a sequence number in one transaction.

Blocking: every method here blocks. The Trio shell calls them through
``trio.to_thread.run_sync`` (one connection, used by one thread at a time).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

SCHEMA_VERSION = 1


class StorageError(Exception):
    """The data dir cannot be used (unwritable, corrupt, from another cluster)."""


@attrs.frozen
class LogRow:
    key: bytes  # unique identity of the record; a put with the same key replaces it
    seq: int  # sequence number the record belongs to (for garbage collection)
    kind: str
    data: bytes


@attrs.frozen
class Stored:
    meta: dict[str, bytes]
    rows: list[LogRow]


class Storage:
    """One replica's SQLite database in `data_dir/replica.db`."""

    def __init__(self, data_dir: str | os.PathLike[str], identity: bytes) -> None:
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data dir {self.data_dir}: {exc.strerror}") from None
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise StorageError(f"data dir {self.data_dir} is not writable")
        self.path = self.data_dir / "replica.db"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS log ("
                " key BLOB PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
                " data BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS log_seq ON log(seq)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from None
        self._check_identity(identity)
        self.snapshots_path = self.data_dir / "snapshots.db"
        self._snap_lock = threading.Lock()
        try:
            self._snap_db = sqlite3.connect(
                self.snapshots_path, check_same_thread=False, isolation_level=None
            )
            self._snap_db.execute("PRAGMA journal_mode=WAL")
            self._snap_db.execute("PRAGMA synchronous=FULL")
            self._snap_db.execute(
                "CREATE TABLE IF NOT EXISTS snapshot (seq INTEGER NOT NULL,"
                " digest BLOB NOT NULL, data BLOB NOT NULL, PRIMARY KEY (seq, digest))"
            )
            #: (seq, digest) of the stored snapshots, so the event loop never asks SQLite
            self._saved: set[tuple[int, bytes]] = {
                (r[0], bytes(r[1]))
                for r in self._snap_db.execute("SELECT seq, digest FROM snapshot")
            }
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open {self.snapshots_path}: {exc}") from None

    def _check_identity(self, identity: bytes) -> None:
        """Refuse a data dir written by another replica (a mixed-up --data path)."""
        row = self._db.execute("SELECT value FROM meta WHERE name='identity'").fetchone()
        if row is None:
            self.write(meta={"identity": identity, "schema": str(SCHEMA_VERSION).encode()})
        elif bytes(row[0]) != identity:
            raise StorageError(
                f"data dir {self.data_dir} belongs to another replica or cluster; "
                "use that replica's own --data path"
            )

    def write(
        self,
        rows: Iterable[LogRow] = (),
        meta: Mapping[str, bytes] | None = None,
        gc_below_or_at: int | None = None,
    ) -> None:
        """Apply puts, meta updates and a GC in one durable transaction."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR REPLACE INTO log(key, seq, kind, data) VALUES (?, ?, ?, ?)",
                    [(r.key, r.seq, r.kind, r.data) for r in rows],
                )
                if meta:
                    db.executemany(
                        "INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)",
                        list(meta.items()),
                    )
                if gc_below_or_at is not None:
                    db.execute("DELETE FROM log WHERE seq <= ?", (gc_below_or_at,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def put_snapshot(self, seq: int, digest: bytes, data: bytes) -> None:
        """Make the snapshot of checkpoint ``seq`` with ``digest`` durable (idempotent).

        Snapshots are keyed by both: a replica's own snapshot at ``seq`` written late never
        replaces a different, certified one it fetched for the same ``seq``."""
        if (seq, digest) in self._saved:
            return
        with self._snap_lock:
            self._snap_db.execute(
                "INSERT OR REPLACE INTO snapshot(seq, digest, data) VALUES (?, ?, ?)",
                (seq, digest, data),
            )
            self._saved.add((seq, digest))

    def has_snapshot(self, seq: int, digest: bytes) -> bool:
        """Whether that snapshot is stored (from memory: never waits on a writing thread)."""
        return (seq, digest) in self._saved

    def snapshot(self, seq: int, digest: bytes) -> bytes | None:
        """The stored snapshot of checkpoint ``seq`` with ``digest``, if any."""
        with self._snap_lock:
            row = self._snap_db.execute(
                "SELECT data FROM snapshot WHERE seq = ? AND digest = ?", (seq, digest)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def prune_snapshots(self, below: int, *, wait: bool = True) -> None:
        """Drop the snapshots of checkpoints below ``below``. With ``wait=False`` it
        never blocks: while a snapshot is being written it does nothing (the next call
        catches up)."""
        if not self._snap_lock.acquire(blocking=wait):
            return
        try:
            self._snap_db.execute("DELETE FROM snapshot WHERE seq < ?", (below,))
            self._saved = {(s, d) for s, d in self._saved if s >= below}
        finally:
            self._snap_lock.release()

    def snapshot_seqs(self) -> list[int]:
        with self._snap_lock:
            return [r[0] for r in self._snap_db.execute("SELECT seq FROM snapshot ORDER BY seq")]

    def load(self) -> Stored:
        """Everything stored, log rows in (seq, key) order."""
        with self._lock:
            meta = {n: bytes(v) for n, v in self._db.execute("SELECT name, value FROM meta")}
            rows = [
                LogRow(bytes(k), s, kind, bytes(d))
                for k, s, kind, d in self._db.execute(
                    "SELECT key, seq, kind, data FROM log ORDER BY seq, key"
                )
            ]
        return Stored(meta, rows)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM log").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._snap_lock:
            self._snap_db.close()
