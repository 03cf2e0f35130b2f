"""The default simulation run: 1,500 seeded schedules (`BFT_SIM_SCHEDULES`), every
invariant after every step.

Each test item is a chunk of consecutive seeds for one cluster size (n=4, f=1 and n=7,
f=2), so pytest shows progress. `BFT_SIM_SCHEDULES=20000 pytest tests/sim/test_safety.py`
runs a long simulation; a failing schedule prints its seed, its parameters, the violated
invariant, the last 200 events and the command that replays it.
"""

from __future__ import annotations

import os

import pytest

from .bugs import PLANTED_BUGS
from .replay import build, describe_replicas
from .runner import chunks, failure_message, run_seeds


@pytest.mark.parametrize(
    ("profile", "n", "start", "count"),
    [pytest.param(*c, id=f"{c[0]}-n{c[1]}-seeds{c[2]}+{c[3]}") for c in chunks()],
)
def test_schedules_keep_every_invariant(profile: str, n: int, start: int, count: int) -> None:
    failed = run_seeds(n, range(start, start + count), profile)
    if failed:
        print(failure_message(failed))
        seeds = ", ".join(str(r.params.seed) for r in failed)
        pytest.fail(f"{len(failed)} of {count} schedules (n={n}) failed: seeds {seeds}")


@pytest.mark.skipif("BFT_SIM_SEED" not in os.environ, reason="set BFT_SIM_SEED to replay one")
def test_one_seed() -> None:
    """`BFT_SIM_SEED=123 [BFT_SIM_N=7] [BFT_SIM_BUG=name] pytest tests/sim -k one_seed -s`."""
    seed = int(os.environ["BFT_SIM_SEED"])
    n = int(os.environ.get("BFT_SIM_N", "4"))
    bug = os.environ.get("BFT_SIM_BUG") or None
    profile = os.environ.get("BFT_SIM_PROFILE", "default")
    assert bug is None or bug in PLANTED_BUGS, f"unknown bug {bug}; one of {sorted(PLANTED_BUGS)}"
    sim = build(seed, n, bug, profile=profile)
    result = sim.run()
    print(result.params.summary())
    print(describe_replicas(sim))
    if not result.ok:
        pytest.fail(result.report())
    print(result.trace.render())
