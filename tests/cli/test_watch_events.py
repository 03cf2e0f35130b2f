"""`watch`'s snapshot diffs (`node/cli/cluster/watch_events.py`): which events explain how
one status snapshot became the next, and `status`'s check of a replica's document."""

from __future__ import annotations

import copy

from node.cli.cluster.status import check_status, status_table
from node.cli.cluster.watch import render
from node.cli.cluster.watch_events import diff_snapshots
from tests.cli.watch_helpers import down, entry, healthy_cluster, kinds, peer, rendered


def test_first_snapshot_reports_only_replicas_already_down():
    snap = healthy_cluster()
    snap[2] = down(2)
    events = diff_snapshots(None, snap, 0.0)
    assert [(e.kind, e.replica) for e in events] == [("unreachable", 2)]
    assert "connection refused" in events[0].text


def test_no_change_no_events():
    assert diff_snapshots(healthy_cluster(), healthy_cluster(), 1.0) == []


def test_unreachable_then_back():
    a = healthy_cluster()
    b = copy.deepcopy(a)
    b[1] = down(1, "timed out")
    ev = diff_snapshots(a, b, 3.0)
    assert [(e.kind, e.replica, e.at) for e in ev] == [("unreachable", 1, 3.0)]
    assert ev[0].text == "replica 1 unreachable (timed out)"
    assert diff_snapshots(b, b, 3.5) == []  # still down: said once
    c = copy.deepcopy(a)
    c[1]["last_executed"] = 150
    ev = diff_snapshots(b, c, 9.0)
    assert kinds(ev) == ["reachable"]
    assert ev[0].text == "replica 1 back (view 0, last executed 150)"


def test_circuit_transitions_each_give_one_event_with_trips():
    a = healthy_cluster()
    b = copy.deepcopy(a)
    b[0]["peers"]["3"] = peer("open", trips=1)
    b[2]["peers"]["3"] = peer("open", trips=2)
    ev = diff_snapshots(a, b, 1.0)
    assert [(e.kind, e.replica, e.peer) for e in ev] == [
        ("circuit_open", 0, "3"),
        ("circuit_open", 2, "3"),
    ]
    assert ev[1].text == "replica 2 → peer 3: circuit opened, trips 2"
    c = copy.deepcopy(b)
    c[0]["peers"]["3"] = peer("half_open", trips=1)
    ev = diff_snapshots(b, c, 2.0)
    assert kinds(ev) == ["circuit_half_open"] and "half-open" in ev[0].text
    d = copy.deepcopy(c)
    d[0]["peers"]["3"] = peer("closed", trips=1)
    assert kinds(diff_snapshots(c, d, 3.0)) == ["circuit_closed"]


def test_view_change_is_one_cluster_event_naming_the_new_primary():
    a = healthy_cluster()
    b = [entry(i, view=1) for i in range(4)]
    b[0] = down(0)  # the old primary died
    ev = diff_snapshots(a, b, 5.0)
    assert kinds(ev) == ["view_change", "unreachable"]
    assert ev[0].text == "view change 0 → 1, primary 1"


def test_degraded_and_recovered():
    a = healthy_cluster()
    b = copy.deepcopy(a)
    b[3]["degraded"] = True
    assert kinds(diff_snapshots(a, b, 1.0)) == ["degraded"]
    assert kinds(diff_snapshots(b, a, 2.0)) == ["recovered"]


def test_state_transfer_from_a_counter_and_catch_up_from_lag():
    a = [entry(0, last=900), entry(1, last=900), entry(2, last=900), entry(3, last=100)]
    for e in a:
        e["state_transfers"] = 0
    b = copy.deepcopy(a)
    b[3].update(last_executed=900, stable_checkpoint=900, state_transfers=1)
    ev = diff_snapshots(a, b, 4.0, lag_threshold=100)
    assert kinds(ev) == ["state_transfer", "caught_up"]
    assert ev[0].text == "replica 3 state transfer to seq 900"
    assert ev[1].text == "replica 3 caught up: last executed 100 → 900"
    # small lags (normal pipelining) are not events
    c = copy.deepcopy(b)
    c[3]["last_executed"] = 850
    assert diff_snapshots(b, c, 5.0, lag_threshold=100) == []


def test_malformed_entries_do_not_break_the_diff_or_the_render():
    a = healthy_cluster()
    b = copy.deepcopy(a)
    b[0]["peers"] = "nonsense"
    b[1]["peers"]["2"] = {"circuit": 7}
    b[2]["view"] = "x"
    b.append({"no": "id"})
    diff_snapshots(a, b, 1.0)
    diff_snapshots(b, a, 2.0)
    text = rendered(render(b, [], now=1.0))
    assert "replicas" in text


def test_check_status_rejects_bad_documents():
    good = {k: v for k, v in entry(1).items() if k != "reachable"}
    assert check_status(good, 1) is None
    assert "answers as replica 1" in check_status(good, 2)
    assert "not an integer" in check_status({**good, "view": "1"}, 1)
    assert "not an integer" in check_status({**good, "view": True}, 1)
    assert "JSON object" in check_status([good], 1)
    assert "peers" in check_status({**good, "peers": [1]}, 1)


def test_a_starting_replica_is_reachable_but_not_counted_for_views():
    starting = {"id": 2, "starting": True, "fault": None, "peers": {}, "reachable": True}
    assert check_status({k: v for k, v in starting.items() if k != "reachable"}, 2) is None
    a = [entry(i, view=3, last=500) for i in range(4)]
    a[2] = down(2)
    b = copy.deepcopy(a)
    b[2] = starting
    assert [e.text for e in diff_snapshots(a, b, 1.0)] == ["replica 2 back (starting)"]
    c = copy.deepcopy(a)
    c[2] = entry(2, view=3, last=500)
    assert [e.text for e in diff_snapshots(b, c, 2.0)] == [
        "replica 2 ready (view 3, last executed 500)"
    ]
    # only starting replicas answer: no bogus "view change" when the others come back
    only = [down(0), down(1), starting, down(3)]
    assert kinds(diff_snapshots(only, a[:2] + [starting, a[3]], 3.0)) == [
        "reachable",
        "reachable",
        "reachable",
    ]
    text = rendered(render(b, [], now=1.0))
    assert "starting" in text and "view 3 primary 3" in text
    assert "starting" in rendered(status_table(b))
