"""Every Prometheus metric of one replica, in its own CollectorRegistry.

Names and labels are the user contract (README "Metrics"): labels carry peer ids, never
names. One registry per replica keeps several replicas in one process (tests, benches)
apart.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

CIRCUIT_VALUES = {"closed": 0, "open": 1, "half_open": 2}

# Breaker latencies: sub-millisecond on loopback up to the 10 s request timeout.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ReplicaMetrics:
    """The contract's metrics plus a few more, bound to one registry."""

    def __init__(self, replica_id: int, fault: str | None) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._peer_metrics(r)
        self._core_metrics(r)
        self._shell_metrics(r)
        ProcessCollector(registry=r)  # process_cpu_seconds_total: `bft-node load`'s CPU/op
        Info("bft_replica", "Replica identity and fault mode", registry=r).info(
            {"id": str(replica_id), "fault": fault or "none"}
        )

    def _peer_metrics(self, r: CollectorRegistry) -> None:
        """Per peer: its circuit, guarded calls, fallback queue and adaptive timeout."""
        self.circuit_state = Gauge(
            "circuit_breaker_state",
            "Circuit state per peer: 0 closed, 1 open, 2 half-open",
            ["peer"],
            registry=r,
        )
        self.trips = Counter(
            "circuit_breaker_trips_total",
            "Transitions of a peer's circuit to open",
            ["peer"],
            registry=r,
        )
        self.success = Counter(
            "circuit_breaker_success_total", "Guarded calls that succeeded", ["peer"], registry=r
        )
        self.failure = Counter(
            "circuit_breaker_failure_total",
            "Guarded calls that failed or timed out",
            ["peer"],
            registry=r,
        )
        self.rejected = Counter(
            "circuit_breaker_rejected_total",
            "Calls rejected because the circuit was open",
            ["peer"],
            registry=r,
        )
        self.latency = Histogram(
            "circuit_breaker_latency_seconds",
            "Guarded call latency by outcome",
            ["peer", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "bft_fallback_queue_depth",
            "Messages waiting in a peer's fallback queue",
            ["peer"],
            registry=r,
        )
        self.adaptive_timeout = Gauge(
            "bft_adaptive_timeout_seconds",
            "A peer's current adaptive call timeout",
            ["peer"],
            registry=r,
        )

    def _core_metrics(self, r: CollectorRegistry) -> None:
        """What the consensus core reports: view, execution, checkpoints, rejections."""
        self.view = Gauge("bft_view", "Current view", registry=r)
        self.last_executed = Gauge(
            "bft_last_executed_seq", "Highest executed sequence number", registry=r
        )
        self.stable_checkpoint = Gauge(
            "bft_stable_checkpoint_seq", "Sequence number of the stable checkpoint", registry=r
        )
        self.view_changes = Counter(
            "bft_view_changes_total", "View changes this replica completed", registry=r
        )
        self.requests_executed = Counter(
            "bft_requests_executed_total", "Client requests executed", registry=r
        )
        self.invalid = Counter(
            "bft_invalid_messages_total",
            "Rejected input by peer and reason",
            ["peer", "reason"],
            registry=r,
        )
        self.rollbacks = Counter(
            "bft_tentative_rollbacks_total",
            "Tentatively executed batches undone (a view change, or another batch committed)",
            registry=r,
        )
        self.state_transfers = Counter(
            "bft_state_transfers_total", "Completed state transfers", registry=r
        )

    def _shell_metrics(self, r: CollectorRegistry) -> None:
        """What the Trio shell reports: degraded mode, admission, the inbox, the disk."""
        self.degraded = Gauge(
            "bft_degraded", "1 while too many circuits are open to reach a quorum", registry=r
        )
        self.inbox_dropped = Counter(
            "bft_inbox_dropped_total",
            "Inbound messages dropped because the inbox was full",
            ["peer"],
            registry=r,
        )
        self.client_refused = Counter(
            "bft_client_refused_total",
            "Client requests answered with an error at once",
            ["reason"],
            registry=r,
        )
        self.storage_write = Histogram(
            "bft_storage_write_seconds",
            "Time to make one group of core rounds durable (SQLite transaction with fsync)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.request_auth = Counter(
            "bft_requests_authenticated_total",
            "Requests in pre-prepares this backup accepted, by how: its MAC tag or the signature",
            ["method"],
            registry=r,
        )
        self._auth_seen = {"mac": 0, "signature": 0}
        for method in self._auth_seen:
            self.request_auth.labels(method)

    def init_peer(self, peer: str) -> None:
        """Create a peer's series at zero so dashboards show them before any event."""
        self.circuit_state.labels(peer).set(0)
        for c in (self.trips, self.success, self.failure, self.rejected):
            c.labels(peer)
        self.queue_depth.labels(peer).set(0)

    def sync_request_auth(self, totals: dict[str, int]) -> None:
        """Bring the counter up to the core's running totals (read at scrape time)."""
        for method, total in totals.items():
            seen = self._auth_seen.get(method, 0)
            if total > seen:
                self.request_auth.labels(method).inc(total - seen)
                self._auth_seen[method] = total

    def render(self) -> bytes:
        return generate_latest(self.registry)
