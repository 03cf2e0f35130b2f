"""A replica's traffic with its peers: per-peer outbound queues and sender tasks through
the guards (breaker, adaptive timeout, fallback queue), heartbeats, and state fetching.

Outbound path of a core message: `PeerTraffic.enqueue` (non-blocking, from the core loop;
applies the fault mode; encodes once) buffers it per peer; `flush` (at the end of the
replica's round) hands each peer's buffered frames as one group to the peer's bounded
channel -> its sender task -> one guarded call that puts the whole group on the
`PeerLink` (through the breaker, with the adaptive deadline), or into the fallback queue
while the circuit is open (the queue drains when it closes). One breaker permit, cancel
scope and task switch per group instead of per message is what lets a replica send a
round's prepares, commits and checkpoints cheaply. A full channel spills into the
fallback queue, so the core loop never waits on a slow peer.

`run` owns every task of the traffic in one nursery of its own: one sender and one
heartbeat per peer, and the short tasks the traffic starts as it goes (heartbeat acks,
the state fetch, the probe of a circuit whose link came back), which reach the nursery
over a bounded channel, so a callback from the core loop or a link never holds a nursery.

When a link to a peer comes back, an open circuit to it is probed at once rather than
after its (backed-off) open timeout, once the peer's link to us is up as well (the probe
is answered on it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Any

import trio

from node.protocol.messages import (
    Checkpoint,
    Heartbeat,
    HeartbeatAck,
    Message,
    NewView,
    PrePrepare,
    Request,
    StateRequest,
    StateResponse,
    ViewChange,
)
from node.resilience import CircuitState
from node.shell.fault_injection import FaultInjector
from node.shell.guard import GuardSet
from transport import PeerLink, TransportError

log = logging.getLogger("bft.replica")

OUTQ_SIZE = 1024  # groups of frames per peer
MAX_ACKS_IN_FLIGHT = 256
FETCH_ROUNDS = 3
ACK_CONNECT_WAIT_S = 1.0
MAX_JOBS = MAX_ACKS_IN_FLIGHT + 64  # short tasks waiting to be started
Item = tuple[bytes, int, Hashable | None, float]  # frame, priority, key, not_before


def priority_of(msg: Message) -> tuple[int, Hashable | None]:
    """Fallback-queue priority (higher drains first) and supersession key of a message."""
    if isinstance(msg, NewView):
        return 5, ("new_view",)
    if isinstance(msg, ViewChange):
        return 5, ("view_change",)
    if isinstance(msg, Checkpoint):
        return 4, ("checkpoint",)
    if isinstance(msg, StateResponse | StateRequest):
        return 3, ("state", type(msg).__name__)
    if isinstance(msg, PrePrepare):
        return 2, None
    if isinstance(msg, Request):
        return 0, None
    return 1, None


class PeerTraffic:
    """Outbound queues, sender tasks, heartbeats and state fetches for all peers."""

    def __init__(
        self,
        me: int,
        links: dict[str, PeerLink],
        guards: GuardSet,
        injector: FaultInjector,
        heartbeat_s: float,
        *,
        startup_grace_s: float,
        wait_inbound: Callable[[str], Awaitable[None]],
    ) -> None:
        self.me = me
        self.links = links
        self.guards = guards
        self.injector = injector
        self.heartbeat_s = heartbeat_s
        self.startup_grace_s = startup_grace_s
        self._wait_inbound = wait_inbound
        self._out: dict[str, tuple[trio.MemorySendChannel, trio.MemoryReceiveChannel]] = {
            peer: trio.open_memory_channel(OUTQ_SIZE) for peer in links
        }
        self._buffered: dict[str, list[Item]] = {peer: [] for peer in links}
        self.fetching = False  # a fetch task is running
        self.startup_until = 0.0  # links still connecting are waited for until then
        self.progress = trio.Event()  # set when the core reports execution progress
        self._jobs, self._job_queue = trio.open_memory_channel[tuple[Any, ...]](MAX_JOBS)
        self._nonce = 0
        self._waiting: dict[tuple[str, int], trio.Event] = {}
        self._acks_in_flight = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The senders, the heartbeats and the traffic's short tasks, until cancelled."""
        self.startup_until = trio.current_time() + self.startup_grace_s
        async with trio.open_nursery() as nursery:
            for peer in self.links:
                nursery.start_soon(self.sender, peer, name=f"sender:{peer}")
                nursery.start_soon(self.heartbeat, peer, name=f"heartbeat:{peer}")
            task_status.started()
            async for job in self._job_queue:
                nursery.start_soon(*job)

    def _spawn(self, async_fn: Callable[..., Awaitable[None]], *args: Any) -> bool:
        """Start a short task in `run`'s nursery; False when too many are waiting."""
        try:
            self._jobs.send_nowait((async_fn, *args))
        except trio.WouldBlock:
            return False
        return True

    # -- outbound -----------------------------------------------------------------------

    def enqueue(self, to: int, msg: Message) -> None:
        """Buffer `msg` for replica `to` without waiting (called from the core loop);
        `flush` hands it to the sender."""
        out = self.injector.outbound(to, msg)
        if out is None:
            return
        priority, key = priority_of(out.msg)
        not_before = trio.current_time() + out.delay_s if out.delay_s else 0.0
        self._buffered[str(to)].append((out.msg.wire, priority, key, not_before))

    def broadcast(self, msg: Message) -> None:
        for peer in self.links:
            self.enqueue(int(peer), msg)

    def flush(self) -> None:
        """Hand every peer's buffered frames to its sender task, one group per peer."""
        for peer, items in self._buffered.items():
            if not items:
                continue
            self._buffered[peer] = []
            try:
                self._out[peer][0].send_nowait(items)
            except trio.WouldBlock:
                self._spill(peer, items, attempts=0)

    def _spill(self, peer: str, items: list[Item], attempts: int) -> None:
        """Put frames that could not go out now into the peer's fallback queue; the first
        one counts `attempts` failed attempts, the rest were not tried."""
        guard = self.guards[peer]
        now = trio.current_time()
        for i, (frame, priority, key, _) in enumerate(items):
            guard.queue.push(
                frame, priority=priority, key=key, now=now, attempts=attempts * (i == 0)
            )
        self.guards.report_depth(guard)
        self.guards.maybe_start_drain(guard)

    async def sender(self, peer: str) -> None:
        """The one task that sends to `peer`, in order, through its guard."""
        receive = self._out[peer][1]
        async for items in receive:
            try:
                while len(items) < OUTQ_SIZE:
                    items = items + receive.receive_nowait()
            except trio.WouldBlock:
                pass
            if any(not_before for _, _, _, not_before in items):  # the delay fault mode
                for data, priority, key, not_before in items:
                    if not_before:
                        await trio.sleep_until(not_before)
                    await self.guards.send(peer, data, priority, key)
            else:
                await self._send_group(peer, items)

    async def _send_group(self, peer: str, items: list[Item]) -> None:
        """One guarded call for a group of frames; what did not go out is queued."""
        guard = self.guards[peer]
        mark = guard.queue.last_seq
        sent = 0

        async def send_all() -> None:
            nonlocal sent
            for frame, _, _, _ in items[sent:]:
                await self.send_raw(peer, frame)
                sent += 1

        result = await self.guards.guarded(guard, send_all, one_way=True)
        if result.ok:
            # a delivered message supersedes an older queued one with the same key
            for _, _, key, _ in items:
                if key is not None and guard.queue.supersede(key, up_to_seq=mark):
                    self.guards.report_depth(guard)
            return
        self._spill(peer, items[sent:], attempts=0 if result.outcome == "rejected" else 1)

    async def send_raw(self, peer: str, data: bytes) -> None:
        """The guards' send function: one frame on the peer's link. Until the startup
        grace ends, a link that is still connecting is waited for (bounded by the
        guard's deadline) instead of failing at once."""
        link = self.links[peer]
        if not link.connected and trio.current_time() < self.startup_until:
            await link.wait_connected()
        await link.send(data)

    async def probe(self, peer: str) -> float:
        """The guards' half-open probe and heartbeat: an application-level round trip.

        A WebSocket ping is answered by the peer's transport alone, so a replica that is
        silent, or slow in what it sends, would still look healthy. A `Heartbeat` is
        answered by the peer's shell with a `HeartbeatAck` on its own outbound link,
        through its fault mode, so silence and delay show here as timeouts. The guard's
        cancel scope bounds the wait; its latency feeds the adaptive timeout."""
        self._nonce += 1
        key = (peer, self._nonce)
        answered = self._waiting[key] = trio.Event()
        started = trio.current_time()
        try:
            await self.send_raw(peer, Heartbeat(self.me, self._nonce).wire)
            await answered.wait()
        finally:
            del self._waiting[key]
        return trio.current_time() - started

    def on_heartbeat(self, peer: str, msg: Heartbeat | HeartbeatAck) -> None:
        """Answer a heartbeat (through the fault mode), or resolve a probe's wait."""
        if isinstance(msg, HeartbeatAck):
            answered = self._waiting.get((peer, msg.nonce))
            if answered is not None:
                answered.set()
            return
        out = self.injector.outbound(int(peer), HeartbeatAck(self.me, msg.nonce))
        if out is None or self._acks_in_flight >= MAX_ACKS_IN_FLIGHT:
            return
        if self._spawn(self._send_ack, peer, out.msg.wire, out.delay_s):
            self._acks_in_flight += 1

    async def _send_ack(self, peer: str, frame: bytes, delay_s: float) -> None:
        """Acks bypass the breaker (our view of the peer must not decide its view of
        us); a link still connecting, e.g. right after a restart, is waited for."""
        try:
            if delay_s:
                await trio.sleep(delay_s)
            link = self.links[peer]
            with trio.move_on_after(ACK_CONNECT_WAIT_S):
                await link.wait_connected()
            try:
                link.try_send(frame)
            except TransportError:
                pass  # the link is down (again): the prober times out, as it should

        finally:
            self._acks_in_flight -= 1

    # -- heartbeats -------------------------------------------------------------------

    async def heartbeat(self, peer: str) -> None:
        """Ping `peer` now and then while its circuit is closed: keeps the adaptive
        timeout fed and opens the circuit of a dead peer even when no traffic flows to
        it. The first ping waits (up to the startup grace) for the link to come up, so
        peers starting together do not trip each other's breakers."""
        link = self.links[peer]
        with trio.move_on_after(self.startup_grace_s):
            await link.wait_connected()
        breaker = self.guards[peer].breaker
        while True:
            if breaker.state is CircuitState.CLOSED:
                await self.guards.call(peer, partial(self.probe, peer))
            await trio.sleep(self.heartbeat_s)

    def on_link_state(self, peer: str, up: bool) -> None:
        """Our link to `peer` (re)connected and authenticated: the peer is back, so an
        open circuit is tested soon (half-open probes) instead of after its open timeout,
        which has backed off while the peer was down. A forced-open circuit stays open."""
        if up:
            self._spawn(self._probe_when_both_ways_up, peer)

    async def _probe_when_both_ways_up(self, peer: str) -> None:
        """A probe is answered on the peer's own link to us; probing before that link is
        up would fail the probe and back the circuit off again, so wait for it (bounded)."""
        with trio.move_on_after(self.startup_grace_s):
            await self._wait_inbound(peer)
        if self.guards[peer].breaker.enter_half_open(trio.current_time()):
            log.info("event=circuit_probe_on_reconnect replica=%d peer=%s", self.me, peer)

    # -- state transfer -------------------------------------------------------------------

    def start_fetch(
        self, fetching: Callable[[], int | None], after: Callable[[], int], idle_s: float
    ) -> bool:
        """Start the state fetch unless one runs; True when it started."""
        if self.fetching or not self._spawn(self.fetch_state, fetching, after, idle_s):
            return False
        self.fetching = True
        return True

    async def fetch_state(
        self, fetching: Callable[[], int | None], after: Callable[[], int], idle_s: float
    ) -> None:
        """While the core wants to catch up (``fetching()`` is not None): ask the
        healthiest peers, one at a time, for what they executed after ``after()`` (the
        answers go through the core's checks), staying with a peer while its answers
        keep the replica executing and moving on after ``idle_s`` without progress.
        Gives up after ``FETCH_ROUNDS`` rounds of the peers; the core asks again at its
        next status tick if it is still behind."""
        self.fetching = True
        try:
            for attempt in range(1, FETCH_ROUNDS + 1):
                for peer in self.guards.best_peers():
                    if fetching() is None:
                        return
                    frame = StateRequest(after(), self.me).wire
                    guard = self.guards[peer]
                    result = await self.guards.guarded(
                        guard, self.send_raw, peer, frame, one_way=True
                    )
                    if not result.ok:
                        continue
                    log.info(
                        "event=state_fetch after=%d target=%s peer=%s attempt=%d",
                        after(),
                        fetching(),
                        peer,
                        attempt,
                    )
                    while fetching() is not None:
                        with trio.move_on_after(idle_s) as idle:
                            await self.progress.wait()
                        if idle.cancelled_caught:
                            break
                    if fetching() is None:
                        return
                await trio.sleep(min(idle_s, 0.5 * attempt))
            log.warning("event=state_fetch_gave_up after=%d target=%s", after(), fetching())
        finally:
            self.fetching = False

    def note_progress(self) -> None:
        self.progress.set()
        self.progress = trio.Event()
