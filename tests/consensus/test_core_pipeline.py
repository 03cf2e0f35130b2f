"""Load-sized batching (``CoreConfig.max_in_flight``): partial batches are cut at the end
of a round while few batches are in flight, and wait for a commit otherwise."""

from __future__ import annotations

from node.consensus.events import (
    BATCH_TIMER,
    Broadcast,
    RequestReceived,
    StartTimer,
    TimerFired,
)
from node.protocol.messages import PrePrepare
from tests.consensus.core_helpers import Net, config, put, run_requests


def pre_prepares(actions: list) -> list[PrePrepare]:
    return [a.msg for a in actions if type(a) is Broadcast and type(a.msg) is PrePrepare]


def test_idle_primary_cuts_at_the_end_of_the_round_not_on_a_clock() -> None:
    net = Net.build(config(batch_max=10, batch_timeout_s=0.05, max_in_flight=1))
    actions = net.handle(0, RequestReceived(put("a", 1, "k", "v")))
    actions += net.handle(0, RequestReceived(put("b", 1, "k", "v")))
    assert not pre_prepares(actions)
    assert [a for a in actions if type(a) is StartTimer and a.timer == BATCH_TIMER] == [
        StartTimer(BATCH_TIMER, 0.0)
    ]
    (pp,) = pre_prepares(net.handle(0, TimerFired(BATCH_TIMER)))
    assert [r.client for r in pp.batch] == ["client/a", "client/b"]


def test_requests_wait_for_the_batch_in_flight_and_then_go_together() -> None:
    net = Net.build(config(batch_max=10, max_in_flight=1))
    net.handle(0, RequestReceived(put("a", 1, "k", "v")))
    net.fire(0, BATCH_TIMER)  # batch 1 = [a] is in flight
    waiting = []
    for session in "bcd":
        waiting += net.handle(0, RequestReceived(put(session, 1, "k", "v")))
    assert not pre_prepares(waiting)
    assert BATCH_TIMER not in net.timers[0]  # nothing to cut until batch 1 commits
    net.deliver()  # batch 1 commits and executes; room for the next batch
    assert net.timers[0].get(BATCH_TIMER) == 0.0
    (pp,) = pre_prepares(net.handle(0, TimerFired(BATCH_TIMER)))
    assert pp.seq == 2 and [r.client for r in pp.batch] == ["client/b", "client/c", "client/d"]
    net.deliver()
    assert all(c.last_executed == 2 for c in net.cores.values())
    assert len({c.state_digest for c in net.cores.values()}) == 1


def test_full_batches_are_cut_at_once_whatever_is_in_flight() -> None:
    net = Net.build(config(batch_max=2, max_in_flight=1))
    actions = []
    for session in "abcdef":
        actions += net.handle(0, RequestReceived(put(session, 1, "k", "v")))
    assert [len(pp.batch) for pp in pre_prepares(actions)] == [2, 2, 2]


def test_a_timer_that_fires_while_the_pipeline_is_full_cuts_nothing() -> None:
    net = Net.build(config(batch_max=10, max_in_flight=2))
    for i, session in enumerate("abc"):
        net.handle(0, RequestReceived(put(session, 1, "k", "v")))
        if i < 2:
            net.fire(0, BATCH_TIMER)  # two batches in flight
    assert BATCH_TIMER not in net.timers[0]
    # a late firing of the batch timer (cancelled meanwhile) cuts nothing
    assert not pre_prepares(net.handle(0, TimerFired(BATCH_TIMER)))
    net.deliver()
    assert net.fire(0, BATCH_TIMER)
    net.deliver()
    assert all(c.last_executed == 3 for c in net.cores.values())


def test_every_request_executes_once_with_load_sized_batches() -> None:
    net = Net.build(config(batch_max=4, max_in_flight=2))
    requests = [put(f"s{i}", 1, f"k{i}", "v") for i in range(23)]
    run_requests(net, requests)
    assert all(c.last_executed >= 6 for c in net.cores.values())
    assert len({c.state_digest for c in net.cores.values()}) == 1
    for i in range(23):
        assert len(net.replies_for(f"s{i}", 1)) == 4


def test_max_in_flight_must_not_be_negative() -> None:
    try:
        config(max_in_flight=-1)
    except ValueError as exc:
        assert "max_in_flight" in str(exc)
    else:
        raise AssertionError("a negative max_in_flight was accepted")
