"""The client: signs requests and adds their authenticator (one MAC per replica), sends
them to the primary (to all after a timeout), and accepts a result once f+1 replicas send
matching committed replies or 2f+1 send matching replies of either kind (tentative ones
included, ``node.client.decide``).

A `ClientPool` keeps one authenticated connection to every replica for one principal and
routes replies to waiting requests; many `Session`s (logical clients with their own
timestamps) share one pool, which is how `bft-node load` runs hundreds of clients cheaply.
A session learns the current view from the replies and sends to that view's primary.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import attrs
import trio

from node.client.decide import decided, most_common
from node.client.errors import ClientError, QuorumUnavailable, Refused, RequestTimeout
from node.config import ClusterConfig, load_private_key, private_seed
from node.protocol.codec import DecodeError, decode
from node.protocol.crypto import Signer, client_mac_keys, request_authenticator, sign_request
from node.protocol.framing import request_frames
from node.protocol.messages import ReadRequest, Reply, ReplyBatch, Request
from node.protocol.messages import Refused as RefusedMsg
from node.tls_network import network_for
from transport import (
    ClientConfig,
    FrameTooLarge,
    LinkDown,
    Network,
    TransportError,
    open_client,
)

log = logging.getLogger("bft.client")

RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 2.0
OVERLOADED = "overloaded"
#: after this many requests in a row refused as overloaded by the primary alone, the next
#: one goes to every replica: a primary that refuses everything would otherwise never
#: be seen by the backups, whose view-change timers are the answer to a censoring primary
MAX_OVERLOAD_STREAK = 3


class _Pending:
    """Replies collected for one outstanding request."""

    __slots__ = (
        "committed",
        "done",
        "read_only",
        "refusals",
        "replies",
        "result",
        "target",
        "view",
        "wake",
    )

    def __init__(self, read_only: bool) -> None:
        self.read_only = read_only  # decided by 2f+1 matching replies alone
        self.replies: dict[int, bytes] = {}  # each replica's latest reply
        self.committed: dict[int, bytes] = {}  # ... and its latest committed one
        self.refusals: dict[int, str] = {}
        self.done = False  # decided (``decide.decided``), or f+1 refusals
        self.wake = trio.Event()  # done, or the connection to `target` was lost
        self.result: bytes | None = None
        self.view = 0
        #: the one replica the request went to, until it is sent to every replica
        self.target: int | None = None

    def finish(self) -> None:
        self.done = True
        self.wake.set()


#: what an unsigned read carries in its signature field (replicas check its MAC instead)
NO_SIGNATURE = bytes(64)


class _Flush:
    """Requests queued for one frame to one replica, and which of them did not leave."""

    __slots__ = ("done", "failed", "requests")

    def __init__(self, first: Request) -> None:
        self.requests = [first]
        self.failed: set[tuple[str, int]] = set()
        self.done = trio.Event()


class ClientPool:
    """Connections to all replicas for one principal, shared by many sessions."""

    def __init__(
        self, cfg: ClusterConfig, principal: str = "client", network: Network | None = None
    ) -> None:
        self.cfg = cfg
        self.principal = principal
        # TCP, or mutual TLS when [transport] tls = true
        self.network = network if network is not None else network_for(cfg, principal=principal)
        if principal not in {c.name for c in cfg.clients}:
            raise ClientError(f"principal {principal!r} is not in [[clients]] of {cfg.path}")
        key = load_private_key(cfg.client_key_path(principal))
        self._seed = private_seed(key)
        self.signer = Signer(self._seed)
        replica_keys = [cfg.replica(i).public_key for i in range(cfg.n)]
        self.mac_keys = client_mac_keys(self.signer, principal, replica_keys)
        self.f = cfg.f
        self.n = cfg.n
        self.view = 0
        self._links: dict[int, Any] = {}
        self._pending: dict[tuple[str, int], _Pending] = {}
        #: requests about to leave, by replica and kind (ordered or read-only)
        self._outq: dict[tuple[int, type], _Flush] = {}
        self.retry_s: float = cfg.section("cluster")["request_timeout_s"]
        self._connected = trio.Event()
        self._overload_streak = 0
        self.link_config = ClientConfig(max_frame=cfg.section("transport")["max_client_frame"])

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection to every replica until cancelled."""
        async with trio.open_nursery() as nursery:
            for r in self.cfg.replicas:
                nursery.start_soon(self._keep_connected, r.id)
            task_status.started()

    async def wait_connected(self, count: int) -> None:
        while sum(1 for link in self._links.values() if link is not None) < count:
            await self._connected.wait()
            self._connected = trio.Event()

    async def _keep_connected(self, rid: int) -> None:
        info = self.cfg.replica(rid)
        delay = RECONNECT_MIN_S
        while True:
            try:
                async with open_client(
                    info.host,
                    info.port,
                    principal=self.principal,
                    private_key=self._seed,
                    replica=str(rid),
                    replica_key=info.public_key,
                    config=self.link_config,
                    dialer=self.network.dialer(self.principal, info.host, info.port),
                ) as link:
                    self._links[rid] = link
                    self._connected.set()
                    delay = RECONNECT_MIN_S
                    while True:
                        self._on_frame(rid, await link.receive())
            except (OSError, trio.TooSlowError, TransportError) as exc:
                log.debug("event=client_link_down replica=%d error=%s", rid, exc)
            finally:
                self._links.pop(rid, None)
                # requests that went to this replica alone (the primary, typically) go to
                # every replica now rather than after their retransmission timeout, so
                # the backups start their view-change timers at once
                for pending in self._pending.values():
                    if pending.target == rid:
                        pending.wake.set()
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _on_frame(self, rid: int, frame: bytes) -> None:
        try:
            msg = decode(frame)
        except DecodeError as exc:
            log.warning("event=bad_reply replica=%d reason=%s", rid, exc.reason)
            return
        if type(msg) is ReplyBatch:
            for reply in msg.replies:
                self._on_reply(rid, reply)
        elif type(msg) is Reply:
            self._on_reply(rid, msg)
        elif type(msg) is RefusedMsg and msg.replica == rid:
            pending = self._pending.get((msg.client, msg.timestamp))
            if pending is None or pending.done:
                return
            pending.refusals[rid] = msg.reason
            if len(pending.refusals) >= self.f + 1:
                pending.finish()
            elif pending.target == rid and msg.reason == OVERLOADED:
                pending.finish()  # the primary cannot order it in time: say so at once

    def _on_reply(self, rid: int, msg: Reply) -> None:
        if msg.replica != rid:
            return
        pending = self._pending.get((msg.client, msg.timestamp))
        if pending is None or pending.done:
            return
        pending.replies[rid] = msg.result
        if not msg.tentative:
            pending.committed[rid] = msg.result
        if decided(pending.replies, pending.committed, msg.result, self.f, pending.read_only):
            pending.result = msg.result
            self.view = max(self.view, msg.view)
            pending.finish()
        elif pending.read_only and (
            most_common(pending.replies) + self.n - len(pending.replies) < 2 * self.f + 1
        ):
            pending.finish()  # a read no result can win now (it ran during a write)

    async def _send(self, rid: int, request: Request | ReadRequest) -> bool:
        """Send ``request`` to replica ``rid``; False if it could not go out.

        The first session to send to a replica yields once, so that every session woken
        by the same replies queues its request too, and then sends them all in one frame;
        each of those sessions learns whether its own request left.
        """
        link = self._links.get(rid)
        if link is None:
            return False
        queue = (rid, type(request))  # ordered and read-only requests travel apart
        flush = self._outq.get(queue)
        if flush is not None:
            flush.requests.append(request)
            await flush.done.wait()
            return request.key not in flush.failed
        flush = self._outq[queue] = _Flush(request)
        try:
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            del self._outq[queue]
            # shielded: a cancelled session must not drop the requests of the others (a
            # send waits at most the link's send timeout)
            with trio.CancelScope(shield=True):
                await self._flush(link, flush)
        return request.key not in flush.failed

    async def _flush(self, link: Any, flush: _Flush) -> None:
        try:
            frames = request_frames(flush.requests, self.link_config.max_frame)
            for i, (frame, carried) in enumerate(frames):
                try:
                    await link.send(frame)
                except FrameTooLarge:  # one request above the limit: the others still go
                    flush.failed.update(r.key for r in carried)
                except TransportError:  # the link is gone: nothing more leaves on it
                    flush.failed.update(r.key for _, group in frames[i:] for r in group)
                    break
        finally:
            flush.done.set()

    async def invoke(self, session: str, timestamp: int, op: bytes, timeout_s: float) -> bytes:
        """Run one signed request to completion; return the agreed result bytes."""
        request = sign_request(Request(session, timestamp, op), self.signer, self.mac_keys)
        pending = _Pending(read_only=False)
        key = (session, timestamp)
        self._pending[key] = pending
        retry_s = self.retry_s
        try:
            with trio.move_on_after(timeout_s) as overall:
                pending.target = self.view % self.n
                if self._overload_streak >= MAX_OVERLOAD_STREAK:
                    self._overload_streak = 0
                    sent = False  # to every replica at once (see MAX_OVERLOAD_STREAK)
                else:
                    sent = await self._send(pending.target, request)
                # no connection to the target (not up yet, or lost): every replica at once
                wait_s = retry_s if sent else 0.0
                while True:
                    with trio.move_on_after(wait_s):
                        await pending.wake.wait()
                    if pending.done:
                        break
                    # No quorum of replies yet, or the target went away: send to every
                    # replica (PBFT retransmission).
                    pending.wake = trio.Event()
                    pending.target = None
                    sent = any([await self._send(r.id, request) for r in self.cfg.replicas])
                    retry_s = min(retry_s * 2, 10.0)
                    wait_s = retry_s / 4
            if overall.cancelled_caught:
                raise RequestTimeout(
                    f"no {self.f + 1} matching replies within {timeout_s:g}s "
                    f"({len(pending.replies)} replies, {len(self._links)} replicas connected)"
                )
        finally:
            del self._pending[key]
        if pending.result is None:
            reasons = sorted(set(pending.refusals.values()))
            if reasons == ["quorum unavailable"]:
                raise QuorumUnavailable(reasons[0])
            if reasons == [OVERLOADED]:
                self._overload_streak += 1
            raise Refused(", ".join(reasons))
        self._overload_streak = 0
        return pending.result

    async def read(self, session: str, timestamp: int, op: bytes, timeout_s: float) -> bytes | None:
        """A read-only `op` answered without ordering: sent to 2f+1 replicas (the rest
        too if those do not agree within a quarter of `timeout_s`), the result 2f+1
        replicas agree on within `timeout_s`, or None (they differ, or too few answered:
        order the operation instead)."""
        # Authenticated by its MAC vector alone, as PBFT authenticates requests: nothing
        # is ordered, so no third party needs a signature (the client saves signing it)
        unsigned = ReadRequest(session, timestamp, op, NO_SIGNATURE)
        read = attrs.evolve(
            unsigned, auth=request_authenticator(self.mac_keys, unsigned.payload_digest)
        )
        needed = 2 * self.f + 1
        pending = _Pending(read_only=True)
        self._pending[read.key] = pending
        connected = sorted(self._links)
        if connected:  # spread the reads: each session starts at another replica
            start = (hash(session) + timestamp) % len(connected)
            connected = connected[start:] + connected[:start]
        try:
            with trio.move_on_after(timeout_s):
                # 2f+1 replicas first; the others only if those do not agree soon
                for rid in connected[:needed]:
                    await self._send(rid, read)
                with trio.move_on_after(timeout_s / 4):
                    await pending.wake.wait()
                if not pending.done:
                    for rid in connected[needed:]:
                        await self._send(rid, read)
                    await pending.wake.wait()
        finally:
            del self._pending[read.key]
        return pending.result


class Session:
    """One logical client: its own session id and increasing timestamps."""

    def __init__(self, pool: ClientPool, name: str | None = None) -> None:
        self.pool = pool
        self.client = f"{pool.principal}/{name or secrets.token_hex(6)}"
        self.timestamp = 0

    async def invoke(self, op: bytes, timeout_s: float = 30.0) -> bytes:
        self.timestamp += 1
        return await self.pool.invoke(self.client, self.timestamp, op, timeout_s)

    async def query(self, op: bytes, timeout_s: float = 30.0) -> bytes:
        """A read-only `op` (a get): answered by 2f+1 matching replicas without ordering
        when they agree within the retransmission timeout, else ordered like any other."""
        self.timestamp += 1
        started = trio.current_time()
        wait_s = min(self.pool.retry_s, timeout_s)
        result = await self.pool.read(self.client, self.timestamp, op, wait_s)
        if result is not None:
            return result
        left = max(0.1, timeout_s - (trio.current_time() - started))
        return await self.invoke(op, left)


__all__ = [
    "ClientError",
    "ClientPool",
    "LinkDown",
    "QuorumUnavailable",
    "Refused",
    "RequestTimeout",
    "Session",
]
