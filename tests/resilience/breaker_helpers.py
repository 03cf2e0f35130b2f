"""Helpers for the pure circuit-breaker tests: a breaker with overrides, and loops of
failed or successful calls at one instant."""

from __future__ import annotations

import random

from node.resilience import BreakerConfig, CircuitBreaker, CircuitState

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def make(peer: str = "p1", seed: int = 1, now: float = 0.0, **overrides: object) -> CircuitBreaker:
    return CircuitBreaker(peer, BreakerConfig(**overrides), random.Random(seed), now=now)


def fail(breaker: CircuitBreaker, times: int, now: float) -> None:
    for _ in range(times):
        permit = breaker.acquire(now)
        assert permit is not None
        breaker.record_failure(permit, now)


def succeed(breaker: CircuitBreaker, times: int, now: float) -> None:
    for _ in range(times):
        permit = breaker.acquire(now)
        assert permit is not None
        breaker.record_success(permit, now)
