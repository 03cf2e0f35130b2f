"""Twins (twins.py): every n=4 scenario of one twinned replica over two phases, and a
sample of n=7 scenarios with one or two twins (`BFT_SIM_TWINS`, default 100), each run
with every invariant after every step. A failing scenario prints its id, its phases, the
violated invariant and the trace; `python -m tests.sim.replay --twins ID --n N` replays it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from .runner import failure_message
from .twins import build, canonical, n4_count, n7_count, run_twins, scenario

CHUNK = 100


def _chunks() -> list[tuple[int, int, int]]:
    out = [(4, start, min(CHUNK, n4_count() - start)) for start in range(0, n4_count(), CHUNK)]
    out += [(7, start, min(CHUNK, n7_count() - start)) for start in range(0, n7_count(), CHUNK)]
    return out


@pytest.mark.parametrize(
    ("n", "start", "count"),
    [pytest.param(*c, id=f"n{c[0]}-ids{c[1]}+{c[2]}") for c in _chunks()],
)
def test_twins_scenarios_keep_every_invariant(n: int, start: int, count: int) -> None:
    failed = run_twins(n, range(start, start + count))
    if failed:
        print(failure_message(failed))
        pytest.fail(f"{len(failed)} Twins scenarios (n={n}) failed in ids {start}+{count}")


def test_twins_space() -> None:
    """The n=4 space is what twins.py says: 1,458 ids, 730 run; the copies of a twin are
    never on one side, and every replica is on exactly one side in every phase."""
    assert n4_count() == 1458
    assert sum(canonical(i) for i in range(n4_count())) == 730
    for i in (*range(0, n4_count(), 7), 17, 1457):
        sc = scenario(4, i)
        for sides in sc.phases:
            nodes = sorted(x for side in sides for x in side)
            assert nodes == list(range(5))
            assert not any({sc.twins[0], 4} <= set(side) for side in sides)
    with pytest.raises(ValueError):
        scenario(4, n4_count())
    assert scenario(7, 3) == scenario(7, 3)  # drawn from the id alone


def test_twins_really_conflict() -> None:
    """The twins are not idle: over 76 of the n=4 scenarios, correct replicas see
    conflicting messages from one identity (refused as equivocation) and view changes
    happen (the partitions force them), and every scenario still completes."""
    rejected: Counter[str] = Counter()
    view_changes = 0
    for scenario_id in [i for i in range(150, 300) if canonical(i)]:
        result = build(4, scenario_id).run()
        assert result.ok, result.report()
        rejected.update(result.rejected)
        view_changes += result.view_changes
    assert rejected["equivocation"] >= 10, rejected
    assert view_changes >= 60, view_changes
