"""The primary's side of batching: requests waiting to be proposed and the next sequence
number.

A ``Proposer`` owns three things and is the only writer of each: the queue of requests to
put into batches (one per client session, in arrival order), the set of
``(session, timestamp)`` already inside this view's unexecuted pre-prepares (so a request is
proposed once per view), and ``next_seq``, the sequence number the next pre-prepare takes.
A view change empties the queue and the set (``reset``); entering a view as its primary
sets ``next_seq`` after the re-issued pre-prepares (``start_view``); a restart or a state
transfer only ever moves it forward (``skip_to``), so a sequence number is never reused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from node.consensus.log import Log
from node.protocol.messages import Request


class Proposer:
    def __init__(self) -> None:
        self.next_seq = 1
        self._queue: OrderedDict[str, Request] = OrderedDict()
        self._proposed: set[tuple[str, int]] = set()

    def __len__(self) -> int:
        """Requests waiting to be proposed."""
        return len(self._queue)

    def is_proposed(self, key: tuple[str, int]) -> bool:
        return key in self._proposed

    def enqueue(self, req: Request) -> bool:
        """Queue ``req`` behind the others (replacing its session's older request) unless it
        is already proposed in this view; True if it was queued."""
        if req.key in self._proposed:
            return False
        self._queue.pop(req.client, None)
        self._queue[req.client] = req
        return True

    def take_batch(self, batch_max: int, last_timestamp: Callable[[str], int]) -> list[Request]:
        """Up to ``batch_max`` queued requests, oldest first, skipping any whose session has
        executed that timestamp or a later one (``last_timestamp``) or that is proposed."""
        batch: list[Request] = []
        queue = self._queue
        while queue and len(batch) < batch_max:
            client, req = queue.popitem(last=False)
            if req.timestamp > last_timestamp(client) and req.key not in self._proposed:
                batch.append(req)
        return batch

    def claim(self, batch: Iterable[Request]) -> int:
        """The sequence number for a new pre-prepare of ``batch``; its requests are now
        proposed in this view."""
        seq = self.next_seq
        self.next_seq += 1
        self._proposed.update(req.key for req in batch)
        return seq

    def skip_to(self, seq: int) -> None:
        """Never propose at or below ``seq - 1`` (restart, state transfer)."""
        self.next_seq = max(self.next_seq, seq)

    def reset(self) -> None:
        """A view change: nothing is queued or proposed any more."""
        self._queue.clear()
        self._proposed.clear()

    def start_view(self, next_seq: int, reissued: Iterable[Request], waiting: Iterable[Request]):
        """Entering a view as its primary: propose from ``next_seq`` on; the ``reissued``
        requests are proposed by the NewView, the ``waiting`` ones (not among them) queue."""
        self.next_seq = next_seq
        self._proposed.update(req.key for req in reissued)
        for req in waiting:
            if req.key not in self._proposed:
                self._queue[req.client] = req

    def forget(self, client: str, ts: int) -> None:
        """The session executed ``ts``: drop its queued request if not newer."""
        queued = self._queue.get(client)
        if queued is not None and queued.timestamp <= ts:
            del self._queue[client]
        self._proposed.discard((client, ts))

    def in_flight(self, log: Log, last_executed: int, limit: int) -> int:
        """Batches above ``last_executed`` that were proposed and have not committed yet
        (counting stops at ``limit``)."""
        count = 0
        for seq in range(last_executed + 1, self.next_seq):
            slot = log.get(seq)
            if slot is not None and slot.committed is None:
                count += 1
                if count >= limit:
                    break
        return count
