"""Resilience layer (pure): circuit breaker, adaptive timeout, fallback queue, peer health.

Nothing here imports trio or reads a clock: time is an argument and jitter comes from an
injected `random.Random`. The Trio side that applies these per peer is `node.shell.guard`.

One private module per idea, re-exported here:
- `config`: `BreakerConfig`, `TimeoutConfig`, `FallbackConfig`, `HealthConfig`, `from_mapping`
- `breaker`: `CircuitBreaker`, `CircuitState`, `BreakerStats`
- `adaptive_timeout`: `AdaptiveTimeout`
- `fallback_queue`: `FallbackQueue`, `QueuedItem`
- `peer_health`: `PeerHealth`, `rank_peers`
"""

from node.resilience.adaptive_timeout import AdaptiveTimeout
from node.resilience.breaker import BreakerStats, CircuitBreaker, CircuitState, TransitionListener
from node.resilience.fallback_queue import FallbackQueue, QueuedItem
from node.resilience.peer_health import PeerHealth, rank_peers
from node.resilience.settings import (
    BreakerConfig,
    FallbackConfig,
    HealthConfig,
    TimeoutConfig,
    from_mapping,
)

__all__ = [
    "AdaptiveTimeout",
    "BreakerConfig",
    "BreakerStats",
    "CircuitBreaker",
    "CircuitState",
    "FallbackConfig",
    "FallbackQueue",
    "HealthConfig",
    "PeerHealth",
    "QueuedItem",
    "TimeoutConfig",
    "TransitionListener",
    "from_mapping",
    "rank_peers",
]
