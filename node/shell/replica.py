"""The Trio shell of one replica: wires the pure core to storage, transport, guards and
HTTP, and owns every task in one nursery.

Tasks: the peer listener (peer and client routes), one PeerLink per peer, one sender per
peer, the guards' probe/drain tasks, heartbeats, the HTTP server, and the core loop. The
core loop takes a batch of events from the one bounded inbox (a round), runs them
through `core.handle`, arms the round's timers and hands its records and other actions to
the `RoundWriter` (`node/shell/round_writer.py`), which performs them only once their records
are durable, in round order, writing the rounds that wait together (group commit). The
round's outbound messages leave as one group per peer and its client replies as one frame
per client connection. Timers are deadlines the core loop waits on with `move_on_at`; a
zero-delay timer fires at the end of the round.

Batching: the core runs with `max_in_flight = MAX_IN_FLIGHT` (load-sized batches, see
`node/consensus/requests.py`). Replies to a client session that wrote only to the
primary go out on its principal's connection (`Listener.client_for`), so a new session
has f + 1 replies at once. When a link to a peer comes back, an open circuit to it is
probed at once rather than after its (backed-off) open timeout. `BFT_PROFILE=PATH`
profiles the process (see `Replica.run`).

Timers fire after the round's events are handled (an event of the round may have re-armed
them), and a due view-change timer waits until the events that were already in the inbox
when it came due are handled: commits that waited in a busy replica's inbox must not look
like a faulty primary.

Admission (`node/shell/admission.py`): a client request is refused at once with
`Refused("overloaded")` when the replica already tracks more requests than it can execute
in a share of the view-change timeout, or its inbox is half full.

Degraded mode: while the open circuits leave fewer than 2f reachable peers, the replica
cannot be part of a quorum; it answers clients at once with `Refused("quorum
unavailable")`, says so in /status, keeps probing, and leaves the mode only when 2f
circuits are closed again (half-open probes do not count, so a replica that is cut off
does not flip in and out of the mode with every probe).
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.app.kv import KVStore
from node.config import ClusterConfig, ConfigError, private_seed
from node.consensus.core import ReplicaCore
from node.consensus.events import (
    VIEW_CHANGE_TIMER,
    Broadcast,
    CancelTimer,
    CheckpointStable,
    Executed,
    FetchState,
    MessageReceived,
    Persist,
    Rejected,
    ReplyToClient,
    RequestReceived,
    Send,
    SnapshotTaken,
    StartTimer,
    StateTransferred,
    TimerFired,
    ViewChanged,
    ViewChangeStarted,
)
from node.consensus.params import CoreConfig
from node.consensus.recovery import recover
from node.observability.http import serve_http
from node.observability.metrics import ReplicaMetrics
from node.protocol import codec
from node.protocol.crypto import Signer
from node.protocol.framing import reply_frames
from node.protocol.messages import (
    Heartbeat,
    HeartbeatAck,
    Refused,
    Reply,
    Request,
    RequestBatch,
)
from node.resilience import BreakerConfig, FallbackConfig, TimeoutConfig
from node.shell.admission import Admission
from node.shell.fault_injection import FaultInjector
from node.shell.fault_modes import Fault
from node.shell.guard import GuardSet
from node.shell.peer_traffic import PeerTraffic
from node.shell.round_writer import RoundWriter
from node.shell.status import http_routes, metric_hooks
from node.storage import Storage
from node.storage.persistence import load_state
from transport import (
    FrameTooLarge,
    Identity,
    LinkConfig,
    LinkDown,
    Listener,
    ListenerConfig,
    PeerLink,
)
from transport.frames import Limits

log = logging.getLogger("bft.replica")

# About half a second of events at the core loop's pace: a longer backlog would only hold
# commits back until the view-change timer fires (peer messages beyond it are dropped
# and counted; the protocol treats them as lost)
INBOX_SIZE = 4_096
CLIENT_SHARE = 0.5  # client requests are refused once the inbox is this full
ROUND_MAX_EVENTS = 512
# Load-sized batching (see node/consensus/requests.py): the primary keeps one batch in
# flight and puts every request that arrives meanwhile into the next one. Measured on a
# 2-core box (docs/performance.md): 1 beats 2 and 4, and beats the batch timer alone.
MAX_IN_FLIGHT = 1
MAX_CLIENT_ROUTES = 100_000
REVERSE_LINK_POLL_S = 0.02
HEARTBEATS = (Heartbeat, HeartbeatAck)  # answered by the shell, never seen by the core
EVIDENCE = {"bad_signature": "invalid_signature", "equivocation": "equivocation"}


def _start_profiler() -> Any:
    import cProfile
    import time

    timer = time.thread_time if os.environ.get("BFT_PROFILE_CPU") else time.perf_counter
    profiler = cProfile.Profile(timer)
    profiler.enable()
    return profiler


def _section(cfg: ClusterConfig, name: str, cls: type, **extra: Any) -> Any:
    try:
        return cls(**cfg.section(name), **extra)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg.path}: [{name}] {exc}") from None


class Replica:
    """One replica process (or one in-process replica, for tests and benches)."""

    def __init__(
        self,
        cfg: ClusterConfig,
        replica_id: int,
        key: Ed25519PrivateKey,
        data_dir: str | os.PathLike[str],
        fault: Fault | None = None,
        *,
        listen_host: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.id = replica_id
        self.info = cfg.replica(replica_id)
        self.seed = private_seed(key)
        self.signer = Signer(self.seed)
        if self.signer.public_key != self.info.public_key:
            raise ConfigError(
                f"key file {cfg.replica_key_path(replica_id)} does not match replica "
                f"{replica_id}'s public_key in {cfg.path}"
            )
        self.fault = fault
        self.fault_label = str(fault) if fault else None
        self.listen_host = listen_host or self.info.host
        self.rng = random.Random(seed if seed is not None else os.urandom(16))
        self.injector = FaultInjector(fault, self.signer, self.rng)
        self.metrics = ReplicaMetrics(replica_id, self.fault_label)
        self.peers = [str(r.id) for r in cfg.replicas if r.id != replica_id]
        for peer in self.peers:
            self.metrics.init_peer(peer)
        self.core_cfg = _section(
            cfg,
            "consensus",
            CoreConfig,
            n=cfg.n,
            f=cfg.f,
            max_in_flight=MAX_IN_FLIGHT,
        )
        self.breaker_cfg = _section(cfg, "breaker", BreakerConfig)
        self.timeout_cfg = _section(cfg, "timeout", TimeoutConfig)
        self.fallback_cfg = _section(cfg, "fallback", FallbackConfig)
        self.transport_cfg = cfg.section("transport")
        self.client_frame_limit: int = self.transport_cfg["max_client_frame"]
        self.data_dir = Path(data_dir)
        self.storage = Storage(self.data_dir, b"bft-node/1/" + self.info.public_key)
        self.core: ReplicaCore | None = None
        self.guards: GuardSet | None = None
        self.traffic: PeerTraffic | None = None
        self.running = False
        self.degraded = False
        self.http_port: int | None = None
        self.port: int | None = None
        self._clients: OrderedDict[str, Any] = OrderedDict()  # session -> its connection
        self._replies: dict[Any, list[Reply]] = {}  # this round's replies, by connection
        self._listener: Listener | None = None
        self._timers: dict[str, float] = {}
        #: events still to handle before a due view-change timer may fire
        self._vc_defer: int | None = None
        self.admission = Admission(self.core_cfg.view_change_timeout_s, self.core_cfg.batch_max)
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[Any](INBOX_SIZE)
        self.requests_executed = 0
        self._gauges: tuple[int, int, int, bool] | None = None
        self.writer = RoundWriter(
            self.storage,
            lambda actions: self._perform(actions),
            self.metrics.storage_write.observe,
        )
        self._nursery: trio.Nursery | None = None
        self._principals = {c.name for c in cfg.clients}

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every task; `task_status.started()` once the replica listens and serves.

        With the environment variable `BFT_PROFILE=PATH` set, the replica's Trio thread
        runs under cProfile and the statistics go to `PATH.<id>` when it stops (for
        finding hot spots; `BFT_PROFILE_CPU=1` times functions in thread CPU time instead
        of wall time, which on a box shared by 5 busy processes charges a function for the
        time others ran; see docs/performance.md)."""
        profile_path = os.environ.get("BFT_PROFILE")
        profiler = _start_profiler() if profile_path else None
        try:
            await self._run(task_status)
        finally:
            self.running = False
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(f"{profile_path}.{self.id}")
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.storage.close)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        stored = await trio.to_thread.run_sync(load_state, self.storage)
        replica_keys = {r.id: r.public_key for r in self.cfg.replicas}
        client_keys = {c.name: c.public_key for c in self.cfg.clients}
        signer = self.injector.core_signer()
        if stored is None:
            self.core = ReplicaCore(
                self.core_cfg, self.id, signer, replica_keys, client_keys, KVStore()
            )
            actions: list[Any] = self.core.start()
        else:
            self.core, actions = recover(
                self.core_cfg, self.id, signer, replica_keys, client_keys, KVStore(), stored
            )
            log.info(
                "event=recovered replica=%d view=%d stable=%d last_executed=%d log_records=%d",
                self.id,
                self.core.view,
                self.core.stable_checkpoint,
                self.core.last_executed,
                len(stored.records),
            )
        identity = Identity(str(self.id), self.seed)
        links = {
            peer: PeerLink(
                identity,
                peer,
                self.cfg.replica(int(peer)).public_key,
                self.cfg.replica(int(peer)).host,
                self.cfg.replica(int(peer)).port,
                config=LinkConfig(
                    keepalive_interval_s=self.transport_cfg["keepalive_interval_s"],
                    keepalive_timeout_s=self.transport_cfg["keepalive_timeout_s"],
                    handshake_timeout_s=self.transport_cfg["handshake_timeout_s"],
                    backoff_max_s=1.0,
                    max_frame=self.transport_cfg["max_peer_frame"],
                    max_message=self.transport_cfg["max_peer_message"],
                ),
                on_state=self._on_link_state,
                on_invalid=self._on_invalid,
                rng=random.Random(self.rng.random()),
            )
            for peer in self.peers
        }
        self.guards = GuardSet(
            self.peers,
            self.cfg.f,
            self.breaker_cfg,
            self.timeout_cfg,
            self.fallback_cfg,
            send=self._send_raw,
            probe=self._probe,
            rng=random.Random(self.rng.random()),
            hooks=metric_hooks(self.metrics, self._on_transition),
            one_way_sends=True,  # heartbeats are the round trips that show a peer alive
        )
        self.traffic = PeerTraffic(
            self.id,
            links,
            self.guards,
            self.injector,
            heartbeat_s=self.transport_cfg["keepalive_interval_s"],
        )
        listener = Listener(
            identity,
            peer_keys={p: self.cfg.replica(int(p)).public_key for p in self.peers},
            client_keys=client_keys,
            on_peer_frame=self._on_peer_frame,
            on_client_frame=self._on_client_frame,
            on_invalid=self._on_invalid,
            peer_decoder=codec.decode,
            client_decoder=codec.decoder_for(Request, RequestBatch),
            config=ListenerConfig(
                host=self.listen_host,
                port=self.info.port,
                limits=Limits(
                    peer_max_frame=self.transport_cfg["max_peer_frame"],
                    client_max_frame=self.transport_cfg["max_client_frame"],
                    peer_max_message=self.transport_cfg["max_peer_message"],
                ),
                handshake_timeout_s=self.transport_cfg["handshake_timeout_s"],
            ),
        )
        self._listener = listener
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.traffic.nursery = nursery
            self.port = await nursery.start(listener.serve)
            self.http_port = await nursery.start(
                serve_http, self.listen_host, self.info.http_port, http_routes(self)
            )
            for link in links.values():
                await nursery.start(link.run)
            await nursery.start(self.guards.run)
            for peer in self.peers:
                nursery.start_soon(self.traffic.sender, peer)
            grace = self.transport_cfg["handshake_timeout_s"]
            self.traffic.startup_until = trio.current_time() + grace
            for peer in self.peers:
                nursery.start_soon(self.traffic.heartbeat, peer, grace)
            if self.injector.crash_after_s is not None:
                nursery.start_soon(self._crash_after, self.injector.crash_after_s)
            nursery.start_soon(self.writer.run)
            nursery.start_soon(self.writer.run_snapshot_saver)
            await self._apply(actions)
            nursery.start_soon(self._core_loop)
            self.running = True
            self.refresh_gauges()
            log.info(
                "event=started replica=%d n=%d f=%d port=%d http_port=%d fault=%s data=%s",
                self.id,
                self.cfg.n,
                self.cfg.f,
                self.port,
                self.http_port,
                self.fault_label or "none",
                self.data_dir,
            )
            task_status.started()

    def stop(self) -> None:
        """Called on SIGINT/SIGTERM before the nursery is cancelled: /healthz turns 503."""
        self.running = False

    async def _crash_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        log.warning("event=fault_crash replica=%d after_s=%g", self.id, seconds)
        logging.shutdown()
        os._exit(70)

    # -- the core loop --------------------------------------------------------------------

    async def _core_loop(self) -> None:
        core = self.core
        assert core is not None
        receive = self._inbox_recv
        while True:
            deadline = min(self._timers.values(), default=math.inf)
            events: list[Any] = []
            with trio.move_on_at(deadline):
                events.append(await receive.receive())
            if events:
                try:
                    while len(events) < ROUND_MAX_EVENTS:
                        events.append(receive.receive_nowait())
                except trio.WouldBlock:
                    pass
            actions: list[Any] = []
            for event in events:
                actions.extend(core.handle(event))
            if actions:
                await self._apply(actions)  # arms and cancels this round's timers first
            fired = self._due_timers(len(events))
            if fired:
                actions = []
                for name in fired:
                    actions.extend(core.handle(TimerFired(name)))
                await self._apply(actions)

    def _due_timers(self, handled: int) -> list[str]:
        """The timers due now, in deadline order; a due view-change timer waits while
        events that were in the inbox when it came due are still unhandled."""
        now = trio.current_time()
        if self._vc_defer is not None:
            self._vc_defer -= handled
        fired = []
        for name, when in sorted(self._timers.items(), key=lambda kv: (kv[1], kv[0])):
            if when > now:
                break
            if name == VIEW_CHANGE_TIMER:
                backlog = self.inbox_depth()
                if backlog and self._vc_defer is None:
                    self._vc_defer = backlog
                if backlog and self._vc_defer is not None and self._vc_defer > 0:
                    continue
                self._vc_defer = None
            del self._timers[name]
            fired.append(name)
        return fired

    async def _apply(self, actions: list[Any]) -> None:
        """Arm the round's timers (they depend on no record) and pass its records and other
        actions to the writer; a round with neither records nor earlier rounds waiting for
        the disk is performed at once."""
        records = []
        rest = []
        now = trio.current_time()
        for a in actions:
            kind = type(a)
            if kind is Persist:
                records.extend(a.records)
            elif kind is StartTimer:
                self._timers[a.timer] = now + a.delay_s
                if a.timer == VIEW_CHANGE_TIMER:
                    self._vc_defer = None
            elif kind is CancelTimer:
                self._timers.pop(a.timer, None)
            elif kind is SnapshotTaken:
                self.writer.save_snapshot(a)
            else:
                rest.append(a)
        if not records and self.writer.idle:
            self._perform(rest)
        else:
            await self.writer.submit(records, rest)

    def _perform(self, actions: list[Any]) -> None:
        """The actions of a round whose records are durable, in order."""
        traffic = self.traffic
        assert traffic is not None and self.core is not None
        for a in actions:
            kind = type(a)
            if kind is Send:
                traffic.enqueue(a.to, a.msg)
            elif kind is Broadcast:
                traffic.broadcast(a.msg)
            elif kind is ReplyToClient:
                self._reply(a.client, a.reply)
            elif kind is Executed:
                self.metrics.requests_executed.inc(a.n_requests)
                self.requests_executed += a.n_requests
                self.admission.executed(a.n_requests, trio.current_time())
                traffic.note_progress()
            elif kind is FetchState:
                self._start_fetch(a.seq)
            elif kind is ViewChanged:
                self.metrics.view_changes.inc()
                log.info(
                    "event=view_change replica=%d view=%d primary=%d", self.id, a.view, a.primary
                )
            elif kind is ViewChangeStarted:
                log.info(
                    "event=view_change_started replica=%d view=%d target=%d reason=%s",
                    self.id,
                    a.view,
                    a.target,
                    a.reason,
                )
            elif kind is CheckpointStable:
                log.debug("event=checkpoint_stable replica=%d seq=%d", self.id, a.seq)
            elif kind is StateTransferred:
                self.metrics.state_transfers.inc()
                traffic.note_progress()
                log.info("event=state_transferred replica=%d seq=%d", self.id, a.seq)
            elif kind is Rejected:
                self._count_rejected(a.sender, a.reason)
        if self._replies:
            self._send_replies()
        traffic.flush()
        self.refresh_gauges()

    def _start_fetch(self, seq: int) -> None:
        """One fetch task at a time; it reads what the core still wants as it goes."""
        traffic, core, nursery = self.traffic, self.core, self._nursery
        assert traffic is not None and core is not None and nursery is not None
        if traffic.fetching:
            return
        log.info(
            "event=catch_up replica=%d last_executed=%d target=%d",
            self.id,
            core.last_executed,
            seq,
        )
        idle_s = min(self.breaker_cfg.request_timeout_s, 2.0)
        nursery.start_soon(
            traffic.fetch_state, lambda: core.fetching, lambda: core.last_executed, idle_s
        )

    def refresh_gauges(self) -> None:
        """Set the core's gauges (only when a value changed: this runs every round)."""
        core = self.core
        if core is None:
            return
        values = (core.view, core.last_executed, core.stable_checkpoint, self.degraded)
        if values == self._gauges:
            return
        self._gauges = values
        m = self.metrics
        m.view.set(core.view)
        m.last_executed.set(core.last_executed)
        m.stable_checkpoint.set(core.stable_checkpoint)
        m.degraded.set(1 if self.degraded else 0)

    def inbox_depth(self) -> int:
        return self._inbox_send.statistics().current_buffer_used

    # -- inbound ----------------------------------------------------------------------------

    async def _on_peer_frame(self, peer: str, msg: Any) -> None:
        if type(msg) in HEARTBEATS:
            assert self.traffic is not None
            self.traffic.on_heartbeat(peer, msg)
            return
        try:
            self._inbox_send.send_nowait(MessageReceived(int(peer), msg))
        except trio.WouldBlock:
            self.metrics.inbox_dropped.labels(peer).inc()

    async def _on_client_frame(self, conn: Any, principal: str, msg: Any) -> None:
        requests = msg.requests if type(msg) is RequestBatch else (msg,)
        clients = self._clients
        for request in requests:
            if request.principal != principal:
                self._on_invalid("client", "principal_mismatch")
                conn.close()
                return
            clients[request.client] = conn
            clients.move_to_end(request.client)
            if len(clients) > MAX_CLIENT_ROUTES:
                clients.popitem(last=False)
            if self.degraded:
                self._refuse(conn, request, "degraded", "quorum unavailable")
            elif self._overloaded():
                self._refuse(conn, request, "overloaded", "overloaded")
            else:
                self._inbox_send.send_nowait(RequestReceived(request))

    def _overloaded(self) -> bool:
        core = self.core
        assert core is not None
        return self.admission.overloaded(
            core.pending_count,
            self.inbox_depth(),
            int(INBOX_SIZE * CLIENT_SHARE),
            trio.current_time(),
        )

    def _refuse(self, conn: Any, request: Request, label: str, reason: str) -> None:
        self.metrics.client_refused.labels(label).inc()
        refused = Refused(request.client, request.timestamp, self.id, reason)
        try:
            conn.send_nowait(refused.wire)
        except LinkDown:
            pass

    def _reply(self, client: str, reply: Reply) -> None:
        """Queue a reply; the round's replies leave together (``_send_replies``)."""
        if not self.injector.allows_client_replies():
            return
        conn = self._clients.get(client)
        if conn is None or conn.closed:
            # A session that sent its request to the primary only: answer on its
            # principal's connection (the sessions of a principal share one per replica),
            # so it has f+1 replies now instead of after its retransmission timeout.
            assert self._listener is not None
            conn = self._listener.client_for(client.split("/", 1)[0])
            if conn is None:
                return
        queued = self._replies.get(conn)
        if queued is None:
            self._replies[conn] = [reply]
        else:
            queued.append(reply)

    def _send_replies(self) -> None:
        """One frame per client connection for the round's replies (a ``ReplyBatch``
        when there are several, split to stay under the client frame limit)."""
        replies, self._replies = self._replies, {}
        for conn, queued in replies.items():
            for frame in reply_frames(queued, self.client_frame_limit):
                try:
                    conn.send_nowait(frame)
                except LinkDown:
                    for reply in queued:
                        if self._clients.get(reply.client) is conn:
                            del self._clients[reply.client]
                    break
                except FrameTooLarge as exc:  # one reply above the limit: say so, go on
                    log.warning(
                        "event=reply_too_large principal=%s size=%d limit=%d",
                        conn.principal,
                        exc.size,
                        exc.limit,
                    )

    def _on_invalid(self, source: str, reason: str) -> None:
        if source in self.peers:
            label = source
        elif source in self._principals:
            label = "client"
        else:
            label = "unauthenticated"  # a remote address: not a label we may multiply
        self.metrics.invalid.labels(label, reason).inc()
        log.info("event=invalid_input source=%s reason=%s", source, reason)

    def _count_rejected(self, sender: Any, reason: str) -> None:
        peer = str(sender) if isinstance(sender, int) else "client"
        self.metrics.invalid.labels(peer, reason).inc()
        if isinstance(sender, int) and self.guards is not None and reason in EVIDENCE:
            self.guards.record_evidence(peer, EVIDENCE[reason])
        log.debug("event=rejected sender=%s reason=%s", sender, reason)

    # -- guards ---------------------------------------------------------------------------

    async def _send_raw(self, peer: str, data: bytes) -> None:
        assert self.traffic is not None
        await self.traffic.send_raw(peer, data)

    async def _probe(self, peer: str) -> float:
        assert self.traffic is not None
        return await self.traffic.probe(peer)

    def _on_link_state(self, peer: str, up: bool) -> None:
        """Our link to `peer` (re)connected and authenticated: the peer is back, so an
        open circuit is tested soon (half-open probes) instead of after its open timeout,
        which has backed off while the peer was down. A forced-open circuit stays open."""
        if up and self.guards is not None and self._nursery is not None:
            self._nursery.start_soon(self._probe_when_both_ways_up, peer)

    async def _probe_when_both_ways_up(self, peer: str) -> None:
        """A probe is answered on the peer's own link to us; probing before that link is
        up would fail the probe and back the circuit off again, so wait for it (bounded)."""
        listener = self._listener
        assert listener is not None
        with trio.move_on_after(self.transport_cfg["handshake_timeout_s"]):
            while peer not in listener.peers:
                await trio.sleep(REVERSE_LINK_POLL_S)
        assert self.guards is not None
        if self.guards[peer].breaker.enter_half_open(trio.current_time()):
            log.info("event=circuit_probe_on_reconnect replica=%d peer=%s", self.id, peer)

    def _on_transition(self, peer: str, old: str, new: str) -> None:
        log.info("event=circuit replica=%d peer=%s from=%s to=%s", self.id, peer, old, new)
        assert self.guards is not None
        needed = 2 * self.cfg.f
        if self.degraded:  # out only once 2f circuits are closed, not merely probing
            degraded = self.guards.closed_count() < needed
        else:
            degraded = len(self.peers) - self.guards.open_count() < needed
        reachable = len(self.peers) - self.guards.open_count()
        if degraded != self.degraded:
            self.degraded = degraded
            log.warning(
                "event=%s replica=%d reachable_peers=%d needed=%d",
                "degraded" if degraded else "recovered",
                self.id,
                reachable,
                2 * self.cfg.f,
            )
            self.metrics.degraded.set(1 if degraded else 0)
