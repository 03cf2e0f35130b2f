"""Evidence that the simulator can fail: planted bugs must be caught within 200 seeds.

For each planted bug (`bugs.py`) and each cluster size, the first seeds of the bug's
attack profile are run with every replica using the buggy core until one schedule
violates a safety invariant (a liveness failure alone does not count). The same schedule with the real core must then pass, so the
violation is the bug's doing and not the simulator's.
"""

from __future__ import annotations

import pytest

from .bugs import PLANTED_BUGS
from .harness import Simulation
from .params import ScheduleParams

SEED_BOUND = 200
SAFETY = (
    "agreement",
    "validity",
    "at_most_once",
    "state_digest",
    "client_result",
    "app_result",
    "state",
    "unjustified",
)


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("bug", sorted(PLANTED_BUGS))
def test_planted_bug_is_caught(bug: str, n: int) -> None:
    planted = PLANTED_BUGS[bug]
    for seed in range(SEED_BOUND):
        params = ScheduleParams.from_seed(seed, n, **planted.profile(n))
        result = Simulation(params, planted.rules).run()
        if any(v.invariant in SAFETY for v in result.violations):
            break
    else:
        pytest.fail(f"planted bug {bug} broke no safety invariant in {SEED_BOUND} seeds, n={n}")
    print(f"{bug} n={n}: caught at seed {seed}: {result.violations[0]}")
    honest = Simulation(params).run()
    assert honest.ok, f"the real core fails the same schedule:\n{honest.report()}"
