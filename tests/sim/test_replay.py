"""A seed alone replays a schedule: same events, same trace, same outcome."""

from __future__ import annotations

import pytest

from . import twins
from .bugs import PLANTED_BUGS
from .harness import Simulation
from .params import ScheduleParams
from .replay import build, main


@pytest.mark.parametrize(("seed", "n"), [(3, 4), (11, 7)])
def test_same_seed_same_run(seed: int, n: int) -> None:
    first = Simulation(ScheduleParams.from_seed(seed, n)).run()
    second = Simulation(ScheduleParams.from_seed(seed, n)).run()
    assert first.ok and second.ok
    assert (first.steps, first.virtual_time) == (second.steps, second.virtual_time)
    assert first.trace.render() == second.trace.render()


def test_replay_command_reproduces_a_planted_failure(capsys: pytest.CaptureFixture[str]) -> None:
    planted = PLANTED_BUGS["quorum_2f"]
    seed = next(
        s
        for s in range(200)
        if not Simulation(ScheduleParams.from_seed(s, 4, **planted.profile(4)), planted.rules)
        .run()
        .ok
    )
    assert main([str(seed), "--n", "4", "--bug", "quorum_2f", "--lines", "50"]) == 1
    out = capsys.readouterr().out
    assert "violation: unjustified" in out or "violation: agreement" in out
    assert "deliver" in out and "PrePrepare(" in out
    again = build(seed, 4, "quorum_2f").run()
    assert "--bug quorum_2f" in again.report()


def test_replay_command_on_a_passing_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["5", "--n", "7", "--lines", "20"]) == 0
    out = capsys.readouterr().out
    assert "outcome: ok" in out and "replica 6" in out


def test_a_twins_scenario_replays_from_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = twins.build(4, 17).run(), twins.build(4, 17).run()
    assert first.ok and second.ok
    assert first.trace.render() == second.trace.render()
    assert main(["--twins", "17", "--n", "4", "--lines", "20"]) == 0
    out = capsys.readouterr().out
    assert "twinned=[1]" in out and "replica 1' (twin)" in out


def test_a_failing_twins_scenario_prints_its_id_and_replays() -> None:
    """Twins make honest copies of one primary equivocate: a quorum of 2f breaks at once."""
    result = twins.build(4, 0, "quorum_2f").run()
    assert not result.ok
    report = result.report()
    assert "python -m tests.sim.replay --twins 0 --n 4 --bug quorum_2f" in report
    assert "twins 0 n=4" in report and "deliver" in report
    assert main(["--twins", "0", "--n", "4", "--bug", "quorum_2f", "--lines", "5"]) == 1
