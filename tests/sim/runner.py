"""Running batches of schedules for the tests: counts from the environment, failure output.

Environment variables:

- `BFT_SIM_SCHEDULES`: total schedules of the default run (default 1500: 45 % default
  profile with n=4, 30 % with n=7, 12 % rejoin profile (`profiles.py`) with n=4, 5 % with
  n=7, 5 % attack profile (`profile_attack.py`) with n=4, 3 % with n=7);
- `BFT_SIM_SEED_BASE`: first seed (default 0), to explore fresh seeds in long runs;
- `BFT_SIM_SEED` (+ `BFT_SIM_N`, `BFT_SIM_BUG`): run just that one schedule, verbosely.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .harness import Simulation
from .params import ScheduleParams
from .profile_attack import attack_params
from .profiles import rejoin_params
from .result import SimResult

#: (profile, n) -> share of the schedules
SHARES = {
    ("default", 4): 0.45,
    ("default", 7): 0.30,
    ("rejoin", 4): 0.12,
    ("rejoin", 7): 0.05,
    ("attack", 4): 0.05,
    ("attack", 7): 0.03,
}
MIN_CHUNK = 50
MAX_CHUNKS_PER_N = 40


def total_schedules() -> int:
    return int(os.environ.get("BFT_SIM_SCHEDULES", "1500"))


def seed_base() -> int:
    return int(os.environ.get("BFT_SIM_SEED_BASE", "0"))


def chunks() -> Iterator[tuple[str, int, int, int]]:
    """(profile, n, first seed, count) for every chunk of the default run."""
    total, base = total_schedules(), seed_base()
    for (profile, n), share in SHARES.items():
        count = round(total * share)
        size = max(MIN_CHUNK, -(-count // MAX_CHUNKS_PER_N))
        for start in range(0, count, size):
            yield profile, n, base + start, min(size, count - start)


def params_for(profile: str, seed: int, n: int) -> ScheduleParams:
    if profile == "rejoin":
        return rejoin_params(seed, n)
    if profile == "attack":
        return attack_params(seed, n)
    return ScheduleParams.from_seed(seed, n)


def run_seeds(n: int, seeds: Iterable[int], profile: str = "default") -> list[SimResult]:
    """Run every seed of a profile with the real core; return the failures."""
    failed = []
    for seed in seeds:
        hint = f"python -m tests.sim.replay {seed} --n {n} --profile {profile}"
        result = Simulation(params_for(profile, seed, n), replay_hint=hint).run()
        if not result.ok:
            failed.append(result)
    return failed


def failure_message(failed: list[SimResult]) -> str:
    """The first failure in full (trace included), then one line per other failure."""
    head = failed[0].report()
    rest = [f"also failed: {r.params.summary()} -> {r.violations[0]}" for r in failed[1:]]
    return "\n".join([head, *rest])
