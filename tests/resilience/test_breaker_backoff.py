"""CircuitBreaker (pure): the open timeout's backoff, jitter and decay, and invariants
that hold under any interleaving of calls (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from node.resilience import BreakerConfig, CircuitBreaker
from tests.resilience.breaker_helpers import CLOSED, HALF_OPEN, OPEN, fail, make, succeed

# -- backoff ----------------------------------------------------------------------------


def test_backoff_grows_geometrically_and_caps() -> None:
    breaker = make(failure_threshold=1, jitter=0.0, success_threshold=1)
    fail(breaker, 1, now=0.0)
    seen = [breaker.open_timeout_s]
    now = 0.0
    for _ in range(6):
        now = breaker.retry_at
        fail(breaker, 1, now=now)  # the half-open test fails
        seen.append(breaker.open_timeout_s)
    assert seen == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0, 300.0]
    assert breaker.backoff_level == 4


def test_jitter_stays_within_bounds_and_varies() -> None:
    values: list[tuple[int, float]] = []
    for seed in range(200):
        breaker = make(seed=seed, failure_threshold=1, jitter=0.1)
        fail(breaker, 1, now=0.0)
        assert breaker.open_timeout_s == 30.0  # the first trip is exact
        fail(breaker, 1, now=30.0)
        values.append((1, breaker.open_timeout_s))
        fail(breaker, 1, now=breaker.retry_at)
        values.append((2, breaker.open_timeout_s))
    for level, value in values:
        nominal = 30.0 * 2**level
        assert nominal * 0.9 <= value <= nominal * 1.1
    assert len({v for _, v in values}) > 300  # really random, not a constant


def test_jitter_is_reproducible_from_the_injected_rng() -> None:
    def run(seed: int) -> list[float]:
        breaker = make(seed=seed, failure_threshold=1)
        fail(breaker, 1, now=0.0)
        out = []
        for _ in range(5):
            fail(breaker, 1, now=breaker.retry_at)
            out.append(breaker.open_timeout_s)
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_backoff_decays_after_sustained_health() -> None:
    breaker = make(failure_threshold=1, success_threshold=1, jitter=0.0, backoff_decay_s=60.0)
    fail(breaker, 1, now=0.0)
    fail(breaker, 1, now=30.0)  # level 1 (60 s)
    fail(breaker, 1, now=90.0)  # level 2 (120 s)
    succeed(breaker, 1, now=210.0)  # closes at 210
    assert breaker.state is CLOSED and breaker.backoff_level == 2
    fail(breaker, 1, now=215.0)  # flapping: the backoff is still high
    assert breaker.open_timeout_s == 120.0
    succeed(breaker, 1, now=335.0)  # closed again at 335
    fail(breaker, 1, now=335.0 + 61.0)  # one decay step: level 1
    assert breaker.open_timeout_s == 60.0
    succeed(breaker, 1, now=breaker.retry_at)  # closed at 456
    fail(breaker, 1, now=10_000.0)  # long healthy: all the way back to the base
    assert breaker.backoff_level == 0 and breaker.open_timeout_s == 30.0


def test_urgent_half_open_due_uses_the_base_timeout() -> None:
    breaker = make(failure_threshold=1, jitter=0.0)
    fail(breaker, 1, now=0.0)
    fail(breaker, 1, now=30.0)
    fail(breaker, 1, now=90.0)  # level 2: retry at 210
    assert breaker.half_open_due() == 210.0
    assert breaker.half_open_due(urgent=True) == 120.0
    assert breaker.enter_half_open(120.0) is True
    assert breaker.state is HALF_OPEN
    assert breaker.half_open_due() == float("inf")


def test_gauge_values_match_the_contract() -> None:
    assert [s.gauge for s in (CLOSED, OPEN, HALF_OPEN)] == [0, 1, 2]
    assert [s.value for s in (CLOSED, OPEN, HALF_OPEN)] == ["closed", "open", "half_open"]


# -- property: invariants under arbitrary interleavings ---------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "success", "failure", "release", "tick", "force"]),
        st.integers(min_value=0, max_value=20),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_invariants_hold_for_any_sequence(ops: list[tuple[str, int]]) -> None:
    cfg = BreakerConfig(failure_threshold=2, half_open_max_calls=2, success_threshold=2)
    breaker = CircuitBreaker("p", cfg, random.Random(0))
    outstanding: list[int] = []
    now = 0.0
    calls = 0
    for op, arg in ops:
        if op == "tick":
            now += arg * 5.0
            breaker.update(now)
        elif op == "acquire":
            permit = breaker.acquire(now)
            calls += 1
            if permit is not None:
                outstanding.append(permit)
        elif op == "force":
            (breaker.force_close if arg % 2 else breaker.force_open)(now)
        elif outstanding:
            permit = outstanding.pop(arg % len(outstanding))
            if op == "success":
                breaker.record_success(permit, now)
            elif op == "failure":
                breaker.record_failure(permit, now)
            else:
                breaker.release(permit)
        stats = breaker.stats(now)
        assert 0 <= stats.half_open_calls <= cfg.half_open_max_calls
        if stats.state is not HALF_OPEN:
            assert stats.half_open_calls == 0 and stats.success_count == 0
        assert stats.success_count < cfg.success_threshold
        assert cfg.open_timeout_s <= stats.open_timeout_s <= cfg.max_open_timeout_s
        if stats.state is CLOSED:
            assert stats.failure_count < cfg.failure_threshold
    assert breaker.total_rejected <= calls
