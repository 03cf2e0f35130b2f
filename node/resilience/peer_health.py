"""Peer health: a score in [0, 1] for choosing whom to ask, and `rank_peers` to choose.

score = success_rate * latency_factor * circuit_factor * (1 - penalty)

- success_rate: EWMA of outcomes (1 success, 0 failure), starting at 1.
- latency_factor: 1 - latency_weight * L / (L + latency_ref_s), L the latency EWMA
  (1 with no latency sample yet).
- circuit_factor: 1 closed, `half_open_factor` half-open, 0 open.
- penalty: Byzantine evidence (invalid signature, equivocation, ...) adds its kind's weight
  (capped at 1) and decays by half every `evidence_half_life_s`: a faulty peer's score
  drops hard at once and recovers slowly.

Time is an input; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from node.resilience.breaker import CircuitState
from node.resilience.settings import HealthConfig

__all__ = ["PeerHealth", "rank_peers"]


class PeerHealth:
    """Success-rate and latency EWMAs plus a decaying evidence penalty for one peer."""

    __slots__ = (
        "_penalty",
        "_penalty_at",
        "config",
        "evidence_counts",
        "latency_ewma_s",
        "success_rate",
    )

    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = config if config is not None else HealthConfig()
        self.success_rate = 1.0
        self.latency_ewma_s: float | None = None
        self._penalty = 0.0
        self._penalty_at = 0.0
        self.evidence_counts: dict[str, int] = {}

    def record_success(self, latency_s: float | None = None) -> None:
        alpha = self.config.ewma_alpha
        self.success_rate += alpha * (1.0 - self.success_rate)
        if latency_s is not None and 0.0 <= latency_s < math.inf:
            if self.latency_ewma_s is None:
                self.latency_ewma_s = float(latency_s)
            else:
                self.latency_ewma_s += alpha * (latency_s - self.latency_ewma_s)

    def record_failure(self) -> None:
        self.success_rate *= 1.0 - self.config.ewma_alpha

    def record_evidence(self, kind: str, now: float) -> float:
        """Penalise the peer for Byzantine evidence of `kind`; returns the new penalty."""
        weight = self.config.evidence_weights.get(kind, self.config.default_evidence_weight)
        self._penalty = min(1.0, self.penalty(now) + weight)
        self._penalty_at = now
        self.evidence_counts[kind] = self.evidence_counts.get(kind, 0) + 1
        return self._penalty

    def penalty(self, now: float) -> float:
        """The evidence penalty in [0, 1] at time `now`."""
        if self._penalty == 0.0:
            return 0.0
        elapsed = max(0.0, now - self._penalty_at)
        return self._penalty * 0.5 ** (elapsed / self.config.evidence_half_life_s)

    def latency_factor(self) -> float:
        latency = self.latency_ewma_s
        if latency is None:
            return 1.0
        cfg = self.config
        return 1.0 - cfg.latency_weight * latency / (latency + cfg.latency_ref_s)

    def score(self, now: float, state: CircuitState = CircuitState.CLOSED) -> float:
        if state is CircuitState.OPEN:
            return 0.0
        circuit = self.config.half_open_factor if state is CircuitState.HALF_OPEN else 1.0
        value = self.success_rate * self.latency_factor() * circuit * (1.0 - self.penalty(now))
        return min(1.0, max(0.0, value))

    def reset(self) -> None:
        """Forget outcomes and latency (evidence is kept: it is not a matter of luck)."""
        self.success_rate = 1.0
        self.latency_ewma_s = None


def rank_peers(
    entries: Iterable[tuple[str, float, CircuitState]], exclude: Collection[str] = ()
) -> list[str]:
    """Peers for request/response work, best first: open circuits and `exclude` skipped,
    higher score first, ties broken by peer name (deterministic)."""
    ranked = sorted(
        (-score, peer)
        for peer, score, state in entries
        if state is not CircuitState.OPEN and peer not in exclude
    )
    return [peer for _, peer in ranked]
