"""AdaptiveTimeout (pure): percentile, mean, defaults, clamping, window bound, clearing."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.resilience import AdaptiveTimeout, TimeoutConfig


def make(default_s: float = 10.0, **overrides: object) -> AdaptiveTimeout:
    cfg = {"min_s": 0.001, "max_s": 60.0, "margin": 1.0, "window": 100} | overrides
    return AdaptiveTimeout(TimeoutConfig(**cfg), default_s)


def test_config_defaults_and_validation() -> None:
    cfg = TimeoutConfig()
    assert cfg.percentile == 0.99 and cfg.min_s <= cfg.max_s
    for overrides, fragment in [
        ({"min_s": 2.0, "max_s": 1.0}, "min_s (2.0) must be <= max_s (1.0)"),
        ({"percentile": 0.0}, "percentile must be in (0, 1]"),
        ({"percentile": 1.5}, "percentile must be in (0, 1]"),
        ({"window": 0}, "window must be >= 1"),
        ({"margin": 0.5}, "margin must be >= 1"),
        ({"min_s": -1.0}, "min_s must be > 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            TimeoutConfig(**overrides)
    with pytest.raises(ValueError, match="default_s must be a positive"):
        AdaptiveTimeout(TimeoutConfig(), 0.0)


def test_percentile_tracking() -> None:
    tracker = make()
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    random.Random(5).shuffle(samples)
    for sample in samples:
        tracker.record(sample)
    assert tracker.percentile() == 0.099  # nearest rank: the 99th of 100
    assert tracker.percentile(0.5) == 0.050
    assert tracker.percentile(1.0) == 0.100
    assert tracker.percentile(0.01) == 0.001


def test_mean_calculation() -> None:
    tracker = make()
    assert tracker.mean() is None
    for sample in (0.1, 0.2, 0.3, 0.4):
        tracker.record(sample)
    assert tracker.mean() == pytest.approx(0.25, abs=1e-15)


def test_timeout_with_no_data_is_the_request_timeout() -> None:
    tracker = make(default_s=10.0, max_s=5.0)
    assert tracker.timeout() == 10.0
    assert tracker.percentile() is None
    assert len(tracker) == 0


def test_timeout_with_historical_data_is_percentile_times_margin() -> None:
    tracker = make(margin=1.5)
    for i in range(1, 101):
        tracker.record(i / 1000)
    assert tracker.timeout() == pytest.approx(0.099 * 1.5)


def test_min_max_clamping() -> None:
    fast = make(min_s=0.05, max_s=2.0)
    for _ in range(10):
        fast.record(0.001)
    assert fast.timeout() == 0.05
    slow = make(min_s=0.05, max_s=2.0)
    for _ in range(10):
        slow.record(30.0)
    assert slow.timeout() == 2.0


def test_history_clearing() -> None:
    tracker = make(default_s=7.0)
    for _ in range(50):
        tracker.record(0.2)
    assert tracker.timeout() == 0.2
    tracker.clear()
    assert len(tracker) == 0
    assert tracker.timeout() == 7.0
    assert tracker.mean() is None
    tracker.record(0.3)
    assert tracker.percentile() == 0.3


def test_window_is_bounded_and_forgets_the_oldest() -> None:
    tracker = make(window=10)
    for _ in range(10):
        tracker.record(5.0)  # an old slow spell
    for _ in range(10):
        tracker.record(0.01)
    assert len(tracker) == 10
    assert tracker.percentile(1.0) == 0.01
    assert tracker.mean() == pytest.approx(0.01)


def test_invalid_samples_are_dropped_and_counted() -> None:
    tracker = make()
    for bad in (-0.1, float("nan"), float("inf"), "fast", None):
        assert tracker.record(bad) is False  # type: ignore[arg-type]
    assert tracker.dropped == 5
    assert len(tracker) == 0
    assert tracker.record(0) is True


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=1, max_size=300),
    st.integers(min_value=1, max_value=50),
    st.floats(min_value=0.01, max_value=1.0),
)
def test_matches_a_brute_force_percentile(
    samples: list[float], window: int, fraction: float
) -> None:
    tracker = make(window=window)
    for sample in samples:
        tracker.record(sample)
    recent = sorted(samples[-window:])
    n = len(recent)
    rank = next(k for k in range(1, n + 1) if k >= fraction * n - 1e-9)  # nearest rank
    assert tracker.percentile(fraction) == recent[rank - 1]
    assert len(tracker) == len(recent)
