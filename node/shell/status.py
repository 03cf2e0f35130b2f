"""What a replica shows: the /status JSON, /healthz, and the resilience hooks that feed
its Prometheus metrics and its log.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from node.observability.metrics import CIRCUIT_VALUES, ReplicaMetrics
from node.shell.guard import GuardHooks

if TYPE_CHECKING:
    from node.shell.replica import Replica

log = logging.getLogger("bft.replica")


def metric_hooks(metrics: ReplicaMetrics, on_transition: Any) -> GuardHooks:
    """Guard callbacks that update the contract's per-peer metrics."""

    def transition(peer: str, old: str, new: str) -> None:
        metrics.circuit_state.labels(peer).set(CIRCUIT_VALUES[new])
        if new == "open" and old != "open":
            metrics.trips.labels(peer).inc()
        on_transition(peer, old, new)

    # labelled children, looked up once: this runs for every message sent to a peer
    children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def call(peer: str, outcome: str, latency_s: float) -> None:
        pair = children.get((peer, outcome))
        if pair is None:
            counter = metrics.success if outcome == "success" else metrics.failure
            pair = children[(peer, outcome)] = (
                counter.labels(peer),
                metrics.latency.labels(peer, outcome),
            )
        pair[0].inc()
        pair[1].observe(latency_s)

    return GuardHooks(
        on_transition=transition,
        on_call=call,
        on_reject=lambda peer: metrics.rejected.labels(peer).inc(),
        on_queue_change=lambda peer, depth: metrics.queue_depth.labels(peer).set(depth),
        on_timeout_change=lambda peer, s: metrics.adaptive_timeout.labels(peer).set(s),
    )


def status_dict(replica: Replica) -> dict[str, Any]:
    """The contract's /status document (plus a few extra fields)."""
    core = replica.core
    peers = replica.guards.snapshot_all()
    return {
        "id": replica.id,
        "view": core.view,
        "primary": core.primary,
        "last_executed": core.last_executed,
        "stable_checkpoint": core.stable_checkpoint,
        "state_digest": core.state_digest.hex(),
        "tentative_seq": core.tentative_seq,
        "fault": replica.fault_label,
        "degraded": replica.degraded,
        "in_view_change": core.in_view_change,
        "inbox": replica.inbox_depth(),
        "requests_executed": replica.requests_executed,
        "writes": replica.writer.writes,
        "write_seconds": round(replica.writer.write_seconds, 3),
        "request_auth": dict(core.auth_counts),
        "peers": peers,
    }


def http_routes(replica: Replica) -> dict[str, Any]:
    def status() -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(status_dict(replica)).encode()

    def healthz() -> tuple[int, str, bytes]:
        if replica.running:
            return 200, "text/plain", b"ok\n"
        return 503, "text/plain", b"starting\n"

    def metrics() -> tuple[int, str, bytes]:
        replica.refresh_gauges()
        replica.metrics.sync_request_auth(replica.core.auth_counts)
        return 200, "text/plain; version=0.0.4; charset=utf-8", replica.metrics.render()

    return {"/status": status, "/healthz": healthz, "/metrics": metrics}
