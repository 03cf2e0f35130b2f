"""Simulated clients: sign requests, send to the primary, retransmit, accept on f+1.

Each `SimClient` is one session `"<principal>/c<i>"` of a real client principal. It runs a
closed loop of requests: puts of a fresh key (so every put in a schedule is unique, which
lets the recording app spot double execution) and, now and then, a read of a key it wrote
earlier, a compare-and-set of one (with the right expected value, or a wrong one), or a
delete. The keys are the session's own and it has one request outstanding, so the
correct result of each is known in advance. A request goes to
the replica the client believes is primary; if no result arrives within the retry
timeout it is sent to every replica, again and again. A result is accepted by the rule
users run (``node.client.decide``): f+1 distinct replicas send matching committed replies,
or 2f+1 send matching replies of either kind (tentative ones: the batch had prepared).

Most reads go first as read-only requests (PBFT's optimisation, ``ReadRequest``) to every
replica, accepted on 2f+1 matching replies; one not decided within the retry timeout is
ordered instead, as a ``Request`` with the next timestamp. The read's correct result is
known all the same (the session's own key, its own last write), so a read-only answer that
misses a write the session saw complete fails the check like any wrong result.
"""

from __future__ import annotations

import random

import attrs

from node.app.kv import decode_op, decode_result, op_cas, op_delete, op_get, op_put
from node.client.decide import decided
from node.protocol.crypto import MAC_LEN, Signer, sign_request
from node.protocol.messages import ReadRequest, Reply, Request

#: the share of reads that go first as read-only requests
READ_ONLY_SHARE = 0.7


@attrs.define
class Outstanding:
    request: Request | ReadRequest
    created_at: float
    expected: tuple[str, bytes | None] | None  # known correct result, if any
    replies: dict[int, bytes] = attrs.Factory(dict)  # replica -> result
    committed: dict[int, bytes] = attrs.Factory(dict)  # replica -> its committed result
    tentative_only: bool = False  # accepted on tentative replies (no f+1 committed)
    accepted_at: float | None = None
    result: bytes | None = None
    fell_back: bool = False  # a read-only request that was ordered in the end


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
        #: this session's keys and their values (None: deleted)
        self._mine: dict[bytes, bytes | None] = {}

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

    def next_request(self, now: float) -> Request | ReadRequest | None:
        """Create (and sign) the next request, or None if busy or finished."""
        if self.current is not None or len(self.history) >= self.total:
            return None
        self.timestamp += 1
        op, expected = self._next_op()
        read_only = decode_op(op)[0] == "get" and self._rng.random() < READ_ONLY_SHARE
        kind = ReadRequest if read_only else Request
        request = self._signed(kind(self.session, self.timestamp, op))
        self.history.append(Outstanding(request, now, expected))
        return request

    def fall_back(self) -> Request | None:
        """Order the current read-only request that 2f+1 replicas did not agree on in
        time: the same operation as a ``Request``, with the next timestamp."""
        current = self.current
        if current is None or type(current.request) is not ReadRequest:
            return None
        self.timestamp += 1
        current.request = self._signed(
            Request(self.session, self.timestamp, current.request.operation)
        )
        current.replies = {}
        current.committed = {}
        current.fell_back = True
        return current.request

    def _signed(self, request: Request | ReadRequest) -> Request | ReadRequest:
        request = sign_request(request, self.signer, self.mac_keys)
        if self._rng.random() < 0.15:
            # a sloppy client: one replica's tag is wrong, so that replica must fall back
            # to the signature when it finds the request in a pre-prepare
            auth = list(request.auth)
            auth[self._rng.randrange(self.n)] = self._rng.randbytes(MAC_LEN)
            request = attrs.evolve(request, auth=tuple(auth))
        return request

    def _next_op(self) -> tuple[bytes, tuple[str, bytes | None]]:
        """The next operation and its correct result (the keys are this session's own)."""
        rng, mine = self._rng, self._mine
        roll = rng.random()
        if mine and roll < 0.3:
            key = rng.choice(sorted(mine))
            value = mine[key]
            return op_get(key), ("ok", value) if value is not None else ("absent", None)
        live = sorted(k for k, v in mine.items() if v is not None)
        if live and roll < 0.45:
            key = rng.choice(live)
            new = f"cas:{self.session}:{self.timestamp}".encode()
            if rng.random() < 0.3:  # a stale expectation: no swap, the current value back
                return op_cas(key, b"stale", new), ("mismatch", mine[key])
            op = op_cas(key, mine[key], new)
            mine[key] = new
            return op, ("ok", None)
        if live and roll < 0.55:
            key = rng.choice(live)
            mine[key] = None
            return op_delete(key), ("ok", None)
        key = f"{self.session}/{self.timestamp}".encode()
        value = f"value:{self.session}:{self.timestamp}".encode()
        mine[key] = value
        return op_put(key, value), ("ok", None)

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
        if not reply.tentative:
            current.committed[replica] = reply.result
        read_only = type(current.request) is ReadRequest
        if not decided(current.replies, current.committed, reply.result, self.f, read_only):
            return None
        current.tentative_only = not read_only and not decided(
            current.committed, current.committed, reply.result, self.f, read_only
        )
        current.accepted_at = now
        current.result = reply.result
        self.view_guess = max(self.view_guess, reply.view)
        return current

    def settled_keys(self) -> dict[bytes, bytes | None]:
        """What this session's keys hold after its accepted operations (None: absent);
        empty while a request is outstanding (its effect is not known yet)."""
        return {} if self.current is not None else dict(self._mine)

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
