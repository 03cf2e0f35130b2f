"""The demo's chaos schedule and recovery measurements, fed hand-made status snapshots."""

import pytest

from node.cli.cluster.chaos import RecoveryTracker, pick_backup, primary_of, schedule, throughput


def entry(rid, view=0, executed=10, stable=0, circuits=None, reachable=True):
    peers = {str(p): {"circuit": c} for p, c in (circuits or {}).items()}
    return {
        "id": rid,
        "view": view,
        "primary": view % 4,
        "last_executed": executed,
        "stable_checkpoint": stable,
        "peers": peers,
        "reachable": reachable,
    }


def test_schedule_scales_and_refuses_short_runs():
    assert [s[0] for s in schedule(40)] == [6.0, 14.0, 22.0, 30.0]
    assert [s[1:] for s in schedule(40)][:2] == [("kill", "backup"), ("revive", "backup")]
    with pytest.raises(ValueError, match="--duration >= 20"):
        schedule(10)


def test_primary_and_backup_choice():
    entries = [entry(0, view=1), entry(1, view=1), entry(2, view=1), entry(3, reachable=False)]
    assert primary_of(entries) == 1
    assert pick_backup(entries, 4) == 3


def test_kill_backup_then_revive_measures_open_close_and_catch_up():
    t = RecoveryTracker()
    live = [entry(i, stable=40, circuits={3: "closed"}) for i in range(3)]
    t.begin("kill", "backup", 3, 10.0, live)
    t.observe(
        10.5,
        [
            entry(0, circuits={3: "open"}),
            entry(1, circuits={3: "closed"}),
            entry(2, circuits={3: "open"}),
        ],
    )
    assert t.steps[0].circuit_open_s is None  # not every other replica opened yet
    t.observe(11.2, [entry(i, circuits={3: "open"}) for i in range(3)])
    assert t.steps[0].circuit_open_s == pytest.approx(1.2)
    t.begin("revive", "backup", 3, 20.0, [entry(i, stable=60) for i in range(3)])
    t.observe(
        21.0,
        [*[entry(i, stable=60, circuits={3: "closed"}) for i in range(3)], entry(3, executed=40)],
    )
    step = t.steps[1]
    assert step.circuit_closed_s == pytest.approx(1.0) and step.caught_up_s is None
    t.observe(22.5, [*[entry(i, circuits={3: "closed"}) for i in range(3)], entry(3, executed=60)])
    assert step.caught_up_s == pytest.approx(2.5)
    assert t.failures() == []


def test_primary_kill_needs_a_commit_in_a_higher_view():
    t = RecoveryTracker()
    t.begin("kill", "primary", 0, 5.0, [entry(i, view=0, executed=100) for i in range(1, 4)])
    t.observe(6.0, [entry(i, view=1, executed=100, circuits={0: "open"}) for i in range(1, 4)])
    assert t.steps[0].new_view_commit_s is None and t.steps[0].circuit_open_s == 1.0
    t.observe(6.4, [entry(i, view=1, executed=101, circuits={0: "open"}) for i in range(1, 4)])
    assert t.steps[0].new_view_commit_s == pytest.approx(1.4)


def test_failures_name_what_did_not_recover():
    t = RecoveryTracker()
    t.begin("kill", "primary", 0, 1.0, [entry(1)])
    t.begin("revive", "primary", 0, 2.0, [entry(1)])
    t.observe(3.0, [entry(1, circuits={0: "open"})])
    assert t.failures() == [
        "kill primary (replica 0): no commit in a new view",
        "revive primary (replica 0): the others' circuits never closed",
    ]


def test_throughput_window():
    timeline = [(0.5, 0.01), (1.0, 0.01), (1.5, 0.01), (3.0, 0.01)]
    assert throughput(timeline, 0.0, 2.0) == 1.5
    assert throughput(timeline, 2.0, 2.0) is None
