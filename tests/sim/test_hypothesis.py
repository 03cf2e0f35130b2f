"""Hypothesis over schedule parameters: any mix of at most f attackers, any chaos level."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import Simulation
from .params import ALL_ADVERSARIES, ScheduleParams


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    n=st.sampled_from([4, 7]),
    seed=st.integers(min_value=0, max_value=2**32),
    adversaries=st.lists(st.sampled_from(ALL_ADVERSARIES), min_size=1, max_size=3, unique=True),
    all_faulty=st.booleans(),
    crash_p=st.sampled_from([0.0, 0.5, 1.0]),
    max_drop_p=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_any_schedule_keeps_the_invariants(
    n: int, seed: int, adversaries: list[str], all_faulty: bool, crash_p: float, max_drop_p: float
) -> None:
    params = ScheduleParams.from_seed(
        seed,
        n,
        adversaries=tuple(adversaries),
        byzantine_count=(n - 1) // 3 if all_faulty else None,
        crash_p=crash_p,
        max_drop_p=max_drop_p,
    )
    result = Simulation(params).run()
    assert result.ok, result.report()
