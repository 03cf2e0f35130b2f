"""PeerHealth and rank_peers (pure): score components, evidence penalty, best peer order."""

from __future__ import annotations

import pytest

from node.resilience import CircuitState, HealthConfig, PeerHealth, rank_peers

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def test_peer_health_score_calculation() -> None:
    cfg = HealthConfig(ewma_alpha=0.5, latency_ref_s=0.1, latency_weight=0.4)
    health = PeerHealth(cfg)
    assert health.score(0.0) == 1.0  # no data: optimistic
    health.record_success(0.1)  # latency EWMA 0.1 = ref: loses half of 0.4
    assert health.score(0.0) == pytest.approx(0.8)
    health.record_failure()  # success rate 1 -> 0.5
    assert health.success_rate == pytest.approx(0.5)
    assert health.score(0.0) == pytest.approx(0.4)
    assert health.score(0.0, HALF_OPEN) == pytest.approx(0.2)
    assert health.score(0.0, OPEN) == 0.0
    health.record_success(0.3)  # rate 0.75, latency EWMA 0.2
    assert health.latency_ewma_s == pytest.approx(0.2)
    assert health.score(0.0) == pytest.approx(0.75 * (1 - 0.4 * 0.2 / 0.3))


def test_failures_lower_and_successes_restore_the_score() -> None:
    health = PeerHealth()
    for _ in range(10):
        health.record_failure()
    low = health.score(0.0)
    assert low < 0.11
    for _ in range(30):
        health.record_success(0.001)
    assert health.score(0.0) > 0.99 * (1 - 0.3 * 0.001 / 0.501)


def test_byzantine_evidence_hits_hard_and_recovers_slowly() -> None:
    health = PeerHealth(HealthConfig(evidence_half_life_s=600.0))
    assert health.record_evidence("equivocation", now=100.0) == pytest.approx(0.9)
    assert health.score(100.0) == pytest.approx(0.1)
    assert health.score(700.0) == pytest.approx(1 - 0.45)  # one half-life later
    assert health.score(100.0 + 6000.0) > 0.999
    # slow: still nearly as low a minute later, whereas a failed call recovers in a few calls
    assert health.score(160.0) < 0.2


def test_evidence_accumulates_and_caps_at_one() -> None:
    health = PeerHealth()
    health.record_evidence("invalid_signature", now=0.0)
    health.record_evidence("invalid_signature", now=0.0)
    health.record_evidence("invalid_signature", now=0.0)
    assert health.penalty(0.0) == 1.0
    assert health.score(0.0) == 0.0
    assert health.evidence_counts == {"invalid_signature": 3}
    other = PeerHealth()
    other.record_evidence("some_new_kind", now=0.0)  # unknown kinds use the default weight
    assert other.penalty(0.0) == pytest.approx(0.25)


def test_reset_keeps_evidence() -> None:
    health = PeerHealth()
    health.record_failure()
    health.record_evidence("equivocation", now=0.0)
    health.reset()
    assert health.success_rate == 1.0
    assert health.score(0.0) == pytest.approx(0.1)


def test_best_peer_selection() -> None:
    entries = [
        ("a", 0.5, CLOSED),
        ("b", 0.9, CLOSED),
        ("c", 1.0, OPEN),  # open circuits are skipped whatever the score
        ("d", 0.9, HALF_OPEN),
        ("e", 0.7, CLOSED),
    ]
    assert rank_peers(entries) == ["b", "d", "e", "a"]  # ties by name
    assert rank_peers(entries, exclude={"b", "e"}) == ["d", "a"]
    assert rank_peers([("c", 1.0, OPEN)]) == []


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="ewma_alpha must be in"):
        HealthConfig(ewma_alpha=0.0)
    with pytest.raises(ValueError, match=r"evidence_weights\[equivocation\] must be in"):
        HealthConfig(evidence_weights={"equivocation": 2.0})
