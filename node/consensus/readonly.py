"""PBFT's read-only optimisation: a ``ReadRequest`` is answered from the executed state,
without being ordered, and the client accepts 2f+1 matching replies.

Why it stays linearizable: a write the client saw complete was prepared by at least f+1
correct replicas (each sent its commit only once prepared) before its client had its
replies, so before any read that starts later arrives anywhere. A replica answers a read
only once it has executed everything it had prepared when the read arrived
(``Log.prepared_top``); any 2f+1 replicas include a correct one that was prepared for that
write, so 2f+1 *matching* replies all reflect it. Replies that differ (a write in
flight, a replica behind, a liar) make the client order the operation instead.

Reads wait in a bounded ``ReadQueue`` in arrival order (the frontier they wait for never
decreases, so the oldest is always answered first) and are answered after any step that
executes, including state transfer; during a view change they simply wait. A read is
authenticated by this replica's MAC tag, else by its signature (the product's client
sends reads with MACs only: nothing is ordered, so no third party needs a signature); a read of an
operation the app cannot answer without changing state is rejected (``not_read_only``),
and one beyond ``MAX_WAITING_READS`` is rejected as ``overloaded``. Reads are never
recorded: they do not touch the client table, the log or the disk.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from node.consensus.events import ReplyToClient
from node.protocol.messages import ReadRequest, Reply

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore

MAX_WAITING_READS = 4096


class ReadQueue:
    """Reads waiting for execution to reach the prepared frontier they arrived at."""

    def __init__(self, limit: int = MAX_WAITING_READS) -> None:
        self.limit = limit
        self._waiting: deque[tuple[int, ReadRequest]] = deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def park(self, target: int, read: ReadRequest) -> bool:
        """Hold `read` until `target` is executed; False when the queue is full."""
        if len(self._waiting) >= self.limit:
            return False
        self._waiting.append((target, read))
        return True

    def ready(self, executed: int) -> list[ReadRequest]:
        """The reads whose target is executed now, oldest first."""
        waiting = self._waiting
        out = []
        while waiting and waiting[0][0] <= executed:
            out.append(waiting.popleft()[1])
        return out


class ReadOnlyMixin:
    def _on_read(self: ReplicaCore, read: ReadRequest) -> None:
        if not (self._mac_ok(read) or self._request_ok(read)):
            known = read.principal in self._client_keys
            self._reject(read.client, "bad_signature" if known else "unknown_sender")
            return
        if self._exec.app.query(read.operation) is None:
            self._reject(read.client, "not_read_only")
            return
        target = self._log.prepared_top
        if target <= self.last_executed and not self._reads:
            self._answer_read(read)
        elif not self._reads.park(target, read):
            self._reject(read.client, "overloaded")

    def _answer_read(self: ReplicaCore, read: ReadRequest) -> None:
        result = self._exec.app.query(read.operation)
        assert result is not None  # checked on arrival; the app's answer depends on op alone
        reply = Reply(self.view, read.timestamp, read.client, self.me, result)
        self._emit(ReplyToClient(read.client, reply))

    def _release_reads(self: ReplicaCore) -> None:
        """Answer the reads that executed state now covers (after every step)."""
        if self._reads:
            for read in self._reads.ready(self.last_executed):
                self._answer_read(read)
