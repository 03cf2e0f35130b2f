"""Running batches of schedules for the tests: counts from the environment, failure output.

Environment variables:

- `BFT_SIM_SCHEDULES`: total schedules of the default run (default 2000; 60 % with n=4,
  40 % with n=7);
- `BFT_SIM_SEED_BASE`: first seed (default 0), to explore fresh seeds in long runs;
- `BFT_SIM_SEED` (+ `BFT_SIM_N`, `BFT_SIM_BUG`): run just that one schedule, verbosely.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .harness import Simulation
from .params import ScheduleParams
from .result import SimResult

SHARES = {4: 0.6, 7: 0.4}
MIN_CHUNK = 50
MAX_CHUNKS_PER_N = 40


def total_schedules() -> int:
    return int(os.environ.get("BFT_SIM_SCHEDULES", "2000"))


def seed_base() -> int:
    return int(os.environ.get("BFT_SIM_SEED_BASE", "0"))


def chunks() -> Iterator[tuple[int, int, int]]:
    """(n, first seed, count) for every chunk of the default run."""
    total, base = total_schedules(), seed_base()
    for n, share in SHARES.items():
        count = round(total * share)
        size = max(MIN_CHUNK, -(-count // MAX_CHUNKS_PER_N))
        for start in range(0, count, size):
            yield n, base + start, min(size, count - start)


def run_seeds(n: int, seeds: Iterable[int]) -> list[SimResult]:
    """Run every seed of the default profile with the real core; return the failures."""
    failed = []
    for seed in seeds:
        result = Simulation(ScheduleParams.from_seed(seed, n)).run()
        if not result.ok:
            failed.append(result)
    return failed


def failure_message(failed: list[SimResult]) -> str:
    """The first failure in full (trace included), then one line per other failure."""
    head = failed[0].report()
    rest = [f"also failed: {r.params.summary()} -> {r.violations[0]}" for r in failed[1:]]
    return "\n".join([head, *rest])
