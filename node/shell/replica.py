"""One replica on Trio: builds the parts that run it and starts each in one nursery.

Built complete at construction (config checked, the data dir opened and recovered): the
core (``node.consensus``), the transport (``wiring``: peer links and the listener), the
guards, the peer traffic, the round writer, the core loop, the client routes and the
effects that perform a round. ``run`` starts them in order, each owning its tasks:

    listener -> HTTP -> links -> guards -> peer traffic -> round writer -> core loop

A request's way: the listener hands a client frame to ``_on_client_frame`` (admission:
degraded mode, overload) -> the inbox -> the core loop runs a round through the core ->
its ``Ready`` goes to the round writer -> once the records are durable, ``Effects``
performs the outbox: messages to the peers' queues (``PeerTraffic``), replies to the
clients' connections (``ClientRoutes``), notes to metrics and logs.

Batching: the core runs with ``max_in_flight = MAX_IN_FLIGHT`` (load-sized batches, see
``node/consensus/requests.py``). ``BFT_PROFILE=PATH`` profiles the process (see ``run``).

Admission (``node/shell/admission.py``): a client request is refused at once with
``Refused("overloaded")`` when the replica already tracks more requests than it can
execute in a share of the view-change timeout, or its inbox is half full; in degraded
mode (``node/shell/reachability.py``) with ``Refused("quorum unavailable")``.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.app.kv import KVStore
from node.config import ClusterConfig, ConfigError, private_seed
from node.consensus.core import ReplicaCore
from node.consensus.events import MessageReceived, RequestReceived
from node.consensus.params import CoreConfig
from node.consensus.recovery import recover
from node.observability.http import serve_http
from node.observability.metrics import ReplicaMetrics
from node.protocol.crypto import Signer
from node.protocol.messages import Heartbeat, HeartbeatAck, ReadBatch, RequestBatch
from node.resilience import BreakerConfig, FallbackConfig, TimeoutConfig
from node.shell import wiring
from node.shell.admission import Admission
from node.shell.client_routes import ClientRoutes
from node.shell.core_loop import CoreLoop, Inbox
from node.shell.effects import Effects
from node.shell.fault_injection import FaultInjector
from node.shell.fault_modes import Fault
from node.shell.guard import GuardSet
from node.shell.peer_traffic import PeerTraffic
from node.shell.reachability import Reachability
from node.shell.round_writer import RoundWriter
from node.shell.status import http_routes, metric_hooks
from node.storage import Storage
from node.storage.persistence import load_state
from node.tls_network import network_for
from transport import Identity, Network

log = logging.getLogger("bft.replica")

CLIENT_SHARE = 0.5  # client requests are refused once the inbox is this full
# Load-sized batching (see node/consensus/requests.py): the primary keeps one batch in
# flight and puts every request that arrives meanwhile into the next one. Measured on a
# 2-core box (docs/performance.md): 1 beats 2 and 4, and beats the batch timer alone.
MAX_IN_FLIGHT = 1
HEARTBEATS = (Heartbeat, HeartbeatAck)  # answered by the shell, never seen by the core


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
        network: Network | None = None,
        serve_http: bool = True,
    ) -> None:
        self.cfg = cfg
        # TCP, or mutual TLS when [transport] tls = true (tests pass a memory network)
        self.network = network if network is not None else network_for(cfg, replica=replica_id)
        self.serve_http = serve_http
        self.id = replica_id
        self.info = cfg.replica(replica_id)
        self.seed = private_seed(key)
        if Signer(self.seed).public_key != self.info.public_key:
            raise ConfigError(
                f"key file {cfg.replica_key_path(replica_id)} does not match replica "
                f"{replica_id}'s public_key in {cfg.path}"
            )
        self.fault_label = str(fault) if fault else None
        self.listen_host = listen_host or self.info.host
        self.rng = random.Random(seed if seed is not None else os.urandom(16))
        self.injector = FaultInjector(fault, Signer(self.seed), self.rng)
        self.metrics = ReplicaMetrics(replica_id, self.fault_label)
        self.peers = [str(r.id) for r in cfg.replicas if r.id != replica_id]
        for peer in self.peers:
            self.metrics.init_peer(peer)
        self.core_cfg = _section(
            cfg, "consensus", CoreConfig, n=cfg.n, f=cfg.f, max_in_flight=MAX_IN_FLIGHT
        )
        self.breaker_cfg = _section(cfg, "breaker", BreakerConfig)
        self.data_dir = Path(data_dir)
        self.storage = Storage(self.data_dir, b"bft-node/1/" + self.info.public_key)
        self.running = False
        self.port = 0  # bound ports, once `run` has started the listener and HTTP
        self.http_port = 0
        self._principals = {c.name for c in cfg.clients}
        self._gauges: tuple[int, int, int, bool] | None = None
        self.core, first = self._recover()
        self._build_parts(first)

    def _recover(self) -> tuple[ReplicaCore, list[Any]]:
        """The core from the data dir's records, or a fresh one; and its first actions."""
        stored = load_state(self.storage)
        replica_keys = {r.id: r.public_key for r in self.cfg.replicas}
        client_keys = {c.name: c.public_key for c in self.cfg.clients}
        signer = self.injector.core_signer()
        if stored is None:
            core = ReplicaCore(self.core_cfg, self.id, signer, replica_keys, client_keys, KVStore())
            return core, core.start()
        core, actions = recover(
            self.core_cfg, self.id, signer, replica_keys, client_keys, KVStore(), stored
        )
        log.info(
            "event=recovered replica=%d view=%d stable=%d last_executed=%d log_records=%d",
            self.id,
            core.view,
            core.stable_checkpoint,
            core.last_executed,
            len(stored.records),
        )
        return core, actions

    def _build_parts(self, first: list[Any]) -> None:
        cfg, transport_cfg = self.cfg, self.cfg.section("transport")
        identity = Identity(str(self.id), self.seed)
        self.listener = wiring.listener(
            cfg,
            identity,
            self.peers,
            self.listen_host,
            self.info.port,
            self._on_peer_frame,
            self._on_client_frame,
            self._on_invalid,
        )
        self.reach = Reachability(self.id, len(self.peers), cfg.f, self.metrics)
        self.guards = self._guard_set()
        links = wiring.peer_links(
            cfg, identity, self.peers, self.rng, self._on_link_state, self._on_invalid, self.network
        )
        self.traffic = PeerTraffic(
            self.id,
            links,
            self.guards,
            self.injector,
            heartbeat_s=transport_cfg["keepalive_interval_s"],
            startup_grace_s=transport_cfg["handshake_timeout_s"],
            wait_inbound=self.listener.wait_peer,
        )
        self.routes = ClientRoutes(
            self.id,
            self.listener.client_for,
            transport_cfg["max_client_frame"],
            self.injector.allows_client_replies,
        )
        self.admission = Admission(self.core_cfg.view_change_timeout_s, self.core_cfg.batch_max)
        self.effects = Effects(
            self.id,
            self.traffic,
            self.routes,
            self.guards,
            self.metrics,
            self.admission,
            self._start_fetch,
            self.refresh_gauges,
        )
        self.writer = RoundWriter(
            self.storage, self.effects.perform, self.metrics.storage_write.observe
        )
        self.inbox = Inbox()
        self.loop = CoreLoop(self.core, self.writer, self.inbox)
        self._first = first

    def _guard_set(self) -> GuardSet:
        cfg = self.cfg
        return GuardSet(
            self.peers,
            cfg.f,
            self.breaker_cfg,
            _section(cfg, "timeout", TimeoutConfig),
            _section(cfg, "fallback", FallbackConfig),
            send=self._send_raw,
            probe=self._probe,
            rng=random.Random(self.rng.random()),
            hooks=metric_hooks(self.metrics, self._on_transition),
            one_way_sends=True,  # heartbeats are the round trips that show a peer alive
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every part; `task_status.started()` once the replica listens and serves.

        With the environment variable `BFT_PROFILE=PATH` set, the replica's Trio thread
        runs under cProfile and the statistics go to `PATH.<id>` when it stops (for
        finding hot spots; `BFT_PROFILE_CPU=1` times functions in thread CPU time instead
        of wall time, which on a box shared by 5 busy processes charges a function for the
        time others ran; see docs/performance.md)."""
        profile_path = os.environ.get("BFT_PROFILE")
        profiler = _start_profiler() if profile_path else None
        try:
            async with trio.open_nursery() as nursery:
                await self._start(nursery)
                task_status.started()
        finally:
            self.running = False
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(f"{profile_path}.{self.id}")
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.storage.close)

    async def _start(self, nursery: trio.Nursery) -> None:
        self.port = await nursery.start(self.network.serve, self.listener)
        if self.serve_http:
            self.http_port = await nursery.start(
                serve_http, self.listen_host, self.info.http_port, http_routes(self)
            )
        for link in self.traffic.links.values():
            await nursery.start(link.run)
        await nursery.start(self.guards.run)
        await nursery.start(self.traffic.run)
        if self.injector.crash_after_s is not None:
            nursery.start_soon(self._crash_after, self.injector.crash_after_s)
        await nursery.start(self.writer.run)
        await nursery.start(self.writer.run_snapshot_saver)
        await nursery.start(self.loop.run, self._first)
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

    def stop(self) -> None:
        """Called on SIGINT/SIGTERM before the nursery is cancelled: /healthz turns 503."""
        self.running = False

    async def _crash_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        log.warning("event=fault_crash replica=%d after_s=%g", self.id, seconds)
        logging.shutdown()
        os._exit(70)

    # -- what the status page and the metrics read -----------------------------------------

    @property
    def degraded(self) -> bool:
        return self.reach.degraded

    @property
    def requests_executed(self) -> int:
        return self.effects.requests_executed

    def inbox_depth(self) -> int:
        return self.inbox.depth

    def refresh_gauges(self) -> None:
        """Set the core's gauges (only when a value changed: this runs every round)."""
        core = self.core
        values = (core.view, core.last_executed, core.stable_checkpoint, self.degraded)
        if values == self._gauges:
            return
        self._gauges = values
        m = self.metrics
        m.view.set(core.view)
        m.last_executed.set(core.last_executed)
        m.stable_checkpoint.set(core.stable_checkpoint)
        m.degraded.set(1 if self.degraded else 0)

    # -- inbound ----------------------------------------------------------------------------

    async def _on_peer_frame(self, peer: str, msg: Any) -> None:
        if type(msg) in HEARTBEATS:
            self.traffic.on_heartbeat(peer, msg)
        elif not self.inbox.put(MessageReceived(int(peer), msg)):
            self.metrics.inbox_dropped.labels(peer).inc()

    async def _on_client_frame(self, conn: Any, principal: str, msg: Any) -> None:
        kind = type(msg)
        requests = (
            msg.requests if kind is RequestBatch else msg.reads if kind is ReadBatch else (msg,)
        )
        for request in requests:
            if request.principal != principal:
                self._on_invalid("client", "principal_mismatch")
                conn.close()
                return
            self.routes.remember(request.client, conn)
            if self.degraded:
                self.metrics.client_refused.labels("degraded").inc()
                self.routes.refuse(conn, request, "quorum unavailable")
            elif self._overloaded() or not self.inbox.put(RequestReceived(request)):
                self.metrics.client_refused.labels("overloaded").inc()
                self.routes.refuse(conn, request, "overloaded")

    def _overloaded(self) -> bool:
        return self.admission.overloaded(
            self.core.pending_count,
            self.inbox.depth,
            int(self.inbox.size * CLIENT_SHARE),
            trio.current_time(),
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

    # -- peers ------------------------------------------------------------------------------

    def _start_fetch(self, seq: int) -> None:
        """One fetch task at a time; it reads what the core still wants as it goes."""
        core = self.core
        idle_s = min(self.breaker_cfg.request_timeout_s, 2.0)
        if self.traffic.start_fetch(lambda: core.fetching, lambda: core.last_executed, idle_s):
            log.info(
                "event=catch_up replica=%d last_executed=%d target=%d",
                self.id,
                core.last_executed,
                seq,
            )

    async def _send_raw(self, peer: str, data: bytes) -> None:
        await self.traffic.send_raw(peer, data)

    async def _probe(self, peer: str) -> float:
        return await self.traffic.probe(peer)

    def _on_link_state(self, peer: str, up: bool) -> None:
        self.traffic.on_link_state(peer, up)

    def _on_transition(self, peer: str, old: str, new: str) -> None:
        guards = self.guards
        self.reach.on_transition(peer, old, new, guards.closed_count(), guards.open_count())
