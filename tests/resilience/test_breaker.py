"""CircuitBreaker (pure): configuration, states, thresholds, half-open permits, events,
stats (backoff and the property test are in test_breaker_backoff.py).

Time is passed in explicitly, so these tests need no clock at all; the Trio-side
behaviour (timeouts through cancel scopes, concurrent tasks) is in test_guard*.py.
"""

from __future__ import annotations

import random
import re

import pytest

from node.resilience import BreakerConfig, CircuitState, from_mapping
from tests.resilience.breaker_helpers import CLOSED, HALF_OPEN, OPEN, fail, make, succeed


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, CircuitState, CircuitState, float]] = []

    def __call__(self, peer: str, old: CircuitState, new: CircuitState, now: float) -> None:
        self.events.append((peer, old, new, now))


# -- configuration ----------------------------------------------------------------------


def test_contract_defaults() -> None:
    cfg = BreakerConfig()
    assert (
        cfg.failure_threshold,
        cfg.open_timeout_s,
        cfg.half_open_max_calls,
        cfg.success_threshold,
        cfg.request_timeout_s,
        cfg.max_open_timeout_s,
    ) == (5, 30.0, 3, 2, 10.0, 300.0)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"failure_threshold": 2.5}, "failure_threshold must be an integer"),
        ({"failure_threshold": True}, "failure_threshold must be an integer"),
        ({"half_open_max_calls": 0}, "half_open_max_calls must be >= 1"),
        ({"success_threshold": -1}, "success_threshold must be >= 1"),
        ({"open_timeout_s": 0}, "open_timeout_s must be > 0"),
        ({"open_timeout_s": float("nan")}, "open_timeout_s must be finite"),
        ({"request_timeout_s": "10"}, "request_timeout_s must be a number"),
        ({"max_open_timeout_s": 10.0}, "max_open_timeout_s (10.0) must be >= open_timeout_s"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier must be >= 1"),
        ({"jitter": 1.0}, "jitter must be in [0, 1)"),
        ({"backoff_decay_s": 0}, "backoff_decay_s must be > 0"),
    ],
)
def test_config_rejects_nonsense(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        BreakerConfig(**overrides)


def test_from_mapping_builds_and_rejects_unknown_keys() -> None:
    cfg = from_mapping(BreakerConfig, {"failure_threshold": 2, "open_timeout_s": 1.5})
    assert cfg.failure_threshold == 2 and cfg.open_timeout_s == 1.5
    with pytest.raises(ValueError, match="unknown key.*failure_treshold"):
        from_mapping(BreakerConfig, {"failure_treshold": 2})


# -- the state machine ------------------------------------------------------------------


def test_initial_state() -> None:
    breaker = make()
    stats = breaker.stats(0.0)
    assert breaker.state is CLOSED
    assert (stats.failure_count, stats.success_count, stats.half_open_calls) == (0, 0, 0)
    assert (stats.total_successes, stats.total_failures, stats.total_trips) == (0, 0, 0)
    assert stats.total_rejected == 0
    assert breaker.acquire(0.0) is not None


def test_closed_to_open_after_threshold_consecutive_failures() -> None:
    breaker = make()
    fail(breaker, 4, now=1.0)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 4
    fail(breaker, 1, now=2.0)
    assert breaker.state is OPEN
    assert breaker.trips == 1
    assert breaker.retry_at == 32.0


def test_rejection_while_open_is_counted_and_returns_none() -> None:
    breaker = make(failure_threshold=1)
    fail(breaker, 1, now=0.0)
    for t in (0.0, 10.0, 29.999):
        assert breaker.acquire(t) is None
    assert breaker.total_rejected == 3
    assert breaker.state is OPEN


def test_automatic_recovery_open_to_half_open() -> None:
    breaker = make(failure_threshold=1)
    fail(breaker, 1, now=5.0)
    assert breaker.update(34.9) is OPEN
    assert breaker.acquire(35.0) is not None
    assert breaker.state is HALF_OPEN
    assert breaker.half_open_calls == 1


def test_half_open_to_closed_after_success_threshold() -> None:
    breaker = make(failure_threshold=1)
    fail(breaker, 1, now=0.0)
    breaker.update(30.0)
    succeed(breaker, 1, now=30.0)
    assert breaker.state is HALF_OPEN
    succeed(breaker, 1, now=30.5)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0


def test_half_open_to_open_on_any_failure() -> None:
    breaker = make(failure_threshold=1, jitter=0.0)
    fail(breaker, 1, now=0.0)
    succeed(breaker, 1, now=30.0)
    fail(breaker, 1, now=31.0)
    assert breaker.state is OPEN
    assert breaker.trips == 2
    assert breaker.open_timeout_s == 60.0  # multiplied
    assert breaker.retry_at == 91.0


def test_success_resets_failure_count() -> None:
    breaker = make()
    fail(breaker, 4, now=0.0)
    succeed(breaker, 1, now=0.0)
    assert breaker.consecutive_failures == 0
    fail(breaker, 4, now=0.0)
    assert breaker.state is CLOSED
    fail(breaker, 1, now=0.0)
    assert breaker.state is OPEN


def test_half_open_max_calls_limit_is_exact() -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=3, success_threshold=5)
    fail(breaker, 1, now=0.0)
    permits = [breaker.acquire(30.0) for _ in range(10)]
    granted = [p for p in permits if p is not None]
    assert len(granted) == 3 and len(set(granted)) == 3
    assert breaker.total_rejected == 7
    breaker.record_success(granted[0], 31.0)  # frees exactly one slot
    assert breaker.acquire(31.0) is not None
    assert breaker.acquire(31.0) is None
    breaker.release(granted[1])  # abandoned: frees a slot, counts nothing
    assert breaker.half_open_calls == 2
    assert breaker.stats(31.0).success_count == 1


def test_stale_permits_do_not_corrupt_half_open_accounting() -> None:
    breaker = make(failure_threshold=2, half_open_max_calls=1, success_threshold=1)
    early = breaker.acquire(0.0)  # admitted while CLOSED, still in flight
    fail(breaker, 2, now=1.0)
    assert breaker.state is OPEN
    probe = breaker.acquire(31.0)
    assert breaker.state is HALF_OPEN and probe is not None
    breaker.record_success(early, 31.5)  # stale: must not close the breaker
    assert breaker.state is HALF_OPEN
    assert breaker.half_open_calls == 1
    breaker.record_failure(early, 31.6)  # stale failure must not re-open it either
    assert breaker.state is HALF_OPEN
    assert breaker.total_successes == 1 and breaker.total_failures == 3
    breaker.record_success(probe, 32.0)
    assert breaker.state is CLOSED
    breaker.record_failure(probe, 32.0)  # settled twice / stale: ignored by the machine
    assert breaker.consecutive_failures == 0


def test_half_open_permit_settled_twice_counts_once() -> None:
    breaker = make(failure_threshold=1, success_threshold=2)
    fail(breaker, 1, now=0.0)
    permit = breaker.acquire(30.0)
    breaker.record_success(permit, 30.0)
    breaker.record_success(permit, 30.0)
    assert breaker.state is HALF_OPEN
    assert breaker.stats(30.0).success_count == 1


def test_manual_force_open_and_force_close() -> None:
    recorder = Recorder()
    breaker = make()
    breaker.subscribe(recorder)
    breaker.force_open(1.0)
    assert breaker.state is OPEN and breaker.forced_open
    assert breaker.acquire(10_000.0) is None  # no automatic recovery while forced
    assert breaker.update(10_000.0) is OPEN
    assert breaker.enter_half_open(10_000.0) is False
    assert breaker.trips == 1  # every transition into OPEN is a trip
    breaker.force_close(10_001.0)
    assert breaker.state is CLOSED and not breaker.forced_open
    assert breaker.acquire(10_001.0) is not None
    assert recorder.events == [("p1", CLOSED, OPEN, 1.0), ("p1", OPEN, CLOSED, 10_001.0)]


def test_reset_returns_to_a_fresh_breaker() -> None:
    breaker = make(failure_threshold=1, jitter=0.0)
    fail(breaker, 1, now=0.0)
    fail(breaker, 1, now=30.0)  # half-open failure: backoff level 1
    assert breaker.backoff_level == 1
    assert breaker.acquire(31.0) is None
    recorder = Recorder()
    breaker.subscribe(recorder)
    breaker.reset(100.0)
    stats = breaker.stats(100.0)
    assert stats.state is CLOSED
    assert (stats.total_trips, stats.total_failures, stats.total_rejected) == (0, 0, 0)
    assert stats.backoff_level == 0 and stats.open_timeout_s == 30.0
    assert recorder.events == [("p1", OPEN, CLOSED, 100.0)]
    fail(breaker, 1, now=101.0)
    assert breaker.open_timeout_s == 30.0  # the first trip after a reset is at the base


def test_statistics_track_every_counter() -> None:
    breaker = make(failure_threshold=2, success_threshold=1)
    succeed(breaker, 3, now=0.0)
    fail(breaker, 2, now=1.0)
    assert breaker.acquire(2.0) is None
    permit = breaker.acquire(31.0)
    stats = breaker.stats(31.5)
    assert stats.state is HALF_OPEN
    assert stats.failure_count == 2
    assert stats.half_open_calls == 1
    assert stats.time_in_state_s == 0.5
    assert stats.total_successes == 3
    assert stats.total_failures == 2
    assert stats.total_trips == 1
    assert stats.total_rejected == 1
    breaker.record_success(permit, 32.0)
    assert breaker.stats(40.0).time_in_state_s == 8.0
    assert breaker.stats(40.0).total_successes == 4


def test_transition_events_reach_every_subscriber_in_order() -> None:
    first, second = Recorder(), Recorder()
    breaker = make(failure_threshold=1, success_threshold=1)
    breaker.subscribe(first)
    breaker.subscribe(second)
    fail(breaker, 1, now=1.0)
    succeed(breaker, 1, now=31.0)
    expected = [
        ("p1", CLOSED, OPEN, 1.0),
        ("p1", OPEN, HALF_OPEN, 31.0),
        ("p1", HALF_OPEN, CLOSED, 31.0),
    ]
    assert first.events == expected and second.events == expected
    breaker.unsubscribe(second)
    fail(breaker, 1, now=40.0)
    assert len(first.events) == 4 and len(second.events) == 3


def test_per_peer_isolation() -> None:
    a, b = make("a"), make("b")
    fail(a, 5, now=0.0)
    assert a.state is OPEN
    assert b.state is CLOSED and b.acquire(0.0) is not None
    assert b.stats(0.0).total_failures == 0


def test_multiple_state_transitions() -> None:
    recorder = Recorder()
    breaker = make(failure_threshold=1, success_threshold=1, jitter=0.0)
    breaker.subscribe(recorder)
    now = 0.0
    for _ in range(3):
        fail(breaker, 1, now=now)
        now = breaker.retry_at
        succeed(breaker, 1, now=now)
        now += 1.0
    assert [new for *_, new, _t in recorder.events] == [OPEN, HALF_OPEN, CLOSED] * 3
    assert breaker.trips == 3 and breaker.state is CLOSED


def test_high_failure_rate_keeps_the_breaker_open() -> None:
    breaker = make(jitter=0.0)
    rng = random.Random(7)
    attempted = rejected = 0
    for step in range(1000):
        now = step * 0.5
        permit = breaker.acquire(now)
        attempted += 1
        if permit is None:
            rejected += 1
            continue
        if rng.random() < 0.9:
            breaker.record_failure(permit, now)
        else:
            breaker.record_success(permit, now)
    assert rejected > 900  # the peer is protected from almost every call
    assert breaker.total_rejected == rejected
    assert breaker.total_successes + breaker.total_failures == attempted - rejected
    assert breaker.backoff_level >= 2
