"""Simulated clients: sign requests, send to the primary, retransmit, accept on f+1.

Each `SimClient` is one session `"<principal>/c<i>"` of a real client principal. It runs a
closed loop of requests: puts of a fresh key (so every mutating operation in a schedule
is unique, which lets the recording app spot double execution) and, now and then, a read
of a key it wrote earlier (whose correct result is known in advance). A request goes to
the replica the client believes is primary; if no result arrives within the retry
timeout it is sent to every replica, again and again. A result is accepted when f+1
distinct replicas send matching replies (same timestamp and result).
"""

from __future__ import annotations

import random

import attrs

from node.app.kv import decode_result, op_get, op_put
from node.consensus.crypto import MAC_LEN, Signer, sign_request
from node.consensus.messages import Reply, Request


@attrs.define
class Outstanding:
    request: Request
    created_at: float
    expected: tuple[str, bytes | None] | None  # known correct result, if any
    replies: dict[int, bytes] = attrs.Factory(dict)  # replica -> result
    accepted_at: float | None = None
    result: bytes | None = None


class SimClient:
    """One client session driving a fixed number of requests, one at a time."""

    def __init__(
        self,
        session: str,
        signer: Signer,
        mac_keys: list[bytes | None],
        n: int,
        f: int,
        total: int,
        rng: random.Random,
    ) -> None:
        self.session = session
        self.signer = signer
        self.mac_keys = mac_keys
        self.n, self.f = n, f
        self.total = total
        self._rng = rng
        self.view_guess = 0
        self.timestamp = 0
        self.history: list[Outstanding] = []
        self._written: list[tuple[bytes, bytes]] = []
        self._unread: list[int] = []

    @property
    def current(self) -> Outstanding | None:
        if self.history and self.history[-1].accepted_at is None:
            return self.history[-1]
        return None

    @property
    def done(self) -> bool:
        return len(self.history) == self.total and self.current is None

    @property
    def primary_guess(self) -> int:
        return self.view_guess % self.n

    def next_request(self, now: float) -> Request | None:
        """Create (and sign) the next request, or None if busy or finished."""
        if self.current is not None or len(self.history) >= self.total:
            return None
        self.timestamp += 1
        expected: tuple[str, bytes | None] | None = None
        if self._unread and self._rng.random() < 0.3:
            key, value = self._written[self._unread.pop(0)]
            op = op_get(key)
            expected = ("ok", value)
        else:
            key = f"{self.session}/{self.timestamp}".encode()
            value = f"value:{self.session}:{self.timestamp}".encode()
            op = op_put(key, value)
            self._unread.append(len(self._written))
            self._written.append((key, value))
            expected = ("ok", None)
        request = sign_request(
            Request(self.session, self.timestamp, op), self.signer, self.mac_keys
        )
        if self._rng.random() < 0.15:
            # a sloppy client: one replica's tag is wrong, so that replica must fall back
            # to the signature when it finds the request in a pre-prepare
            auth = list(request.auth)
            auth[self._rng.randrange(self.n)] = self._rng.randbytes(MAC_LEN)
            request = attrs.evolve(request, auth=tuple(auth))
        self.history.append(Outstanding(request, now, expected))
        return request

    def on_reply(self, replica: int, reply: Reply, now: float) -> Outstanding | None:
        """Record a reply from `replica`; return the request if this accepts it."""
        current = self.current
        if (
            current is None
            or not isinstance(reply, Reply)
            or reply.client != self.session
            or reply.timestamp != current.request.timestamp
            or reply.replica != replica
        ):
            return None
        current.replies[replica] = reply.result
        matching = [r for r in current.replies.values() if r == reply.result]
        if len(matching) < self.f + 1:
            return None
        current.accepted_at = now
        current.result = reply.result
        self.view_guess = max(self.view_guess, reply.view)
        return current

    def wrong_result(self, outstanding: Outstanding) -> str | None:
        """Why an accepted result is not the one a correct service gives, or None."""
        if outstanding.expected is None or outstanding.result is None:
            return None
        try:
            got = decode_result(outstanding.result)
        except ValueError:
            return f"undecodable result {outstanding.result!r:.60}"
        if got != outstanding.expected:
            return f"result {got!r:.80} != expected {outstanding.expected!r:.80}"
        return None
