"""The replica's durable-write pipeline: nothing leaves before its records are on disk.

The core loop hands each round's records and its outbox (``node.consensus.ready``) to
``RoundWriter.submit``. One writer task (``run``) makes the records of every waiting round
durable in one SQLite transaction (group commit) and only then performs those rounds'
outboxes, in round order (raft's Ready rule). The perform function receives a ``Durable``,
which only this module makes, and only after the write: persist-before-send is the shape
of the call, not a convention. A round with no records and nothing waiting before it is
performed at once, inside ``submit``. At most ``MAX_ROUNDS_AHEAD`` rounds wait; then
``submit`` waits too, which bounds memory when the disk is slow.

Where the writes run: a group of log records is written on the event loop itself (a WAL
append and one fsync), which costs less CPU than a thread hop per write (the figures are
in docs/performance.md). Snapshots are large, so they go to worker threads: ``save_snapshot`` stores the core's
``SnapshotTaken`` in the background as soon as it is taken (``run_snapshot_saver``), and a
stable checkpoint whose snapshot is not saved yet is written in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from node.consensus.events import SnapshotTaken
from node.consensus.ready import Outbox
from node.consensus.records import StableRecord
from node.storage import Storage
from node.storage.persistence import write_round

MAX_ROUNDS_AHEAD = 256  # rounds waiting for their write before the core loop waits too


@attrs.frozen
class Durable:
    """An outbox whose round's records, and every earlier round's, are on disk."""

    outbox: Outbox


class RoundWriter:
    """Group commit of rounds' records, then their outboxes in round order."""

    def __init__(
        self,
        storage: Storage,
        perform: Callable[[Durable], None],
        observe: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.storage = storage
        self._perform = perform
        self._observe = observe
        self.writes = 0  # transactions written (a group of rounds each)
        self.write_seconds = 0.0  # their total time, thread hop included
        #: rounds whose outboxes wait for their records (and earlier rounds') to be durable
        self.unwritten: list[tuple[tuple[Any, ...], Outbox]] = []
        self._writing = False
        self._wake = trio.Event()
        self._room = trio.Event()
        self._snapshot: SnapshotTaken | None = None
        self._snapshot_wake = trio.Event()

    @property
    def idle(self) -> bool:
        """No round waits for the disk: a round without records may be performed now."""
        return not self.unwritten and not self._writing

    async def submit(self, records: tuple[Any, ...], outbox: Outbox) -> None:
        """A round: its records, then (once they are durable) its outbox. Without records
        and with no earlier round waiting, the outbox is performed now."""
        if not records and self.idle:
            self._perform(Durable(outbox))
            return
        while len(self.unwritten) >= MAX_ROUNDS_AHEAD:
            self._room = trio.Event()
            await self._room.wait()
        self.unwritten.append((records, outbox))
        self._wake.set()

    def save_snapshot(self, taken: SnapshotTaken) -> None:
        """Store a snapshot in the background; the newest wins, nothing waits for it."""
        self._snapshot = taken
        self._snapshot_wake.set()

    def _snapshot_unsaved(self, records: list[Any]) -> bool:
        """A stable checkpoint whose snapshot (megabytes, for a large store) is not in the
        snapshot store yet: that write goes to a worker thread."""
        return any(
            type(r) is StableRecord and not self.storage.has_snapshot(r.seq, r.digest)
            for r in records
        )

    async def run_snapshot_saver(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Store each snapshot the core takes as soon as it is taken, beside the log and in
        its own thread, so the write that later records it as stable is small."""
        task_status.started()
        while True:
            await self._snapshot_wake.wait()
            self._snapshot_wake = trio.Event()
            taken, self._snapshot = self._snapshot, None
            if taken is not None:
                await trio.to_thread.run_sync(
                    self.storage.put_snapshot, taken.seq, taken.digest, taken.snapshot
                )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The one writer: every waiting round's records in one transaction, then those
        rounds' outboxes in order."""
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self.unwritten:
                rounds, self.unwritten = self.unwritten, []
                self._room.set()
                records = [r for recs, _ in rounds for r in recs]
                if records:
                    self._writing = True
                    started = trio.current_time()
                    try:
                        if self._snapshot_unsaved(records):
                            await trio.to_thread.run_sync(write_round, self.storage, records)
                        else:
                            write_round(self.storage, records)
                    finally:
                        self._writing = False
                    took = trio.current_time() - started
                    self.writes += 1
                    self.write_seconds += took
                    self._observe(took)
                for _, outbox in rounds:
                    self._perform(Durable(outbox))
