"""What the guards keep about one peer, and what a guarded call comes to.

`PeerGuard` bundles a peer's breaker, adaptive timeout, fallback queue and health score;
`CallResult` is the outcome of one guarded call; `GuardHooks` are the callbacks for
metrics and logs. `PEER_ERRORS` are the exceptions that mean the peer (or the way to it)
failed: anything else raised inside a guarded call is a bug in this process, logged as
such and not charged to the peer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs
import trio

from node.resilience import AdaptiveTimeout, CircuitBreaker, FallbackQueue, PeerHealth
from transport import TransportError

#: a guarded operation that raises one of these failed because of the peer or the network
PEER_ERRORS: tuple[type[Exception], ...] = (
    TransportError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


class Outcome(enum.StrEnum):
    """What a guarded call came to; the values are the contract's metric labels."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    REJECTED = "rejected"


SUCCESS, FAILURE, TIMEOUT, REJECTED = Outcome


@attrs.define
class GuardHooks:
    """Optional callbacks for metrics and logs (each may be None). States are the
    contract's strings ("closed", "open", "half_open"); outcomes are "success",
    "failure", "timeout"; drop reasons are "full", "retries", "superseded".
    `on_queue_change` fires when a peer's queue depth changes and `on_timeout_change` when
    its adaptive timeout moves by more than 0.1%; `run` reports both once at start."""

    on_transition: Callable[[str, str, str], None] | None = None
    on_call: Callable[[str, str, float], None] | None = None
    on_reject: Callable[[str], None] | None = None
    on_queue_change: Callable[[str, int], None] | None = None
    on_timeout_change: Callable[[str, float], None] | None = None
    on_queue_drop: Callable[[str, str], None] | None = None


@attrs.frozen
class CallResult:
    """What a guarded call came to. `outcome` is success, failure, timeout or rejected."""

    outcome: Outcome
    value: Any = None
    error: Exception | None = None
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == SUCCESS


_REJECTED = CallResult(REJECTED)


@attrs.define(eq=False)
class PeerGuard:
    """Everything the replica keeps about one peer."""

    peer: str
    breaker: CircuitBreaker
    timeout: AdaptiveTimeout
    queue: FallbackQueue
    health: PeerHealth
    draining: bool = False
    reported_depth: int = 0
    reported_timeout: float = 0.0

    def score(self, now: float) -> float:
        return self.health.score(now, self.breaker.state)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Exactly the contract's /status fields for this peer."""
        return {
            "circuit": self.breaker.state.value,
            "consecutive_failures": self.breaker.consecutive_failures,
            "timeout_ms": round(self.timeout.timeout() * 1000.0, 3),
            "queued": len(self.queue),
            "health": round(self.score(now), 4),
            "trips": self.breaker.trips,
        }
