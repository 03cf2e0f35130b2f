"""View and log synchronisation: status messages, a laggard handed the NewView of the
current view, catch-up by commit certificates, no view change while behind or cut off,
and what a restart keeps (NewView, certificates received while catching up)."""

from __future__ import annotations

import attrs

from node.consensus.events import (
    STATUS_TIMER,
    VIEW_CHANGE_TIMER,
    Broadcast,
    Executed,
    FetchState,
    MessageReceived,
    RequestReceived,
    Send,
    TimerFired,
)
from node.consensus.records import NewViewRecord
from node.protocol.messages import NewView, PrePrepare, Status
from tests.consensus.core_helpers import Net, config, put, run_requests

CFG = config(batch_max=2, checkpoint_interval=4, watermark_window=8)


def _status(i: int, view: int, executed: int, stable: int = 0) -> MessageReceived:
    return MessageReceived(i, Status(i, view, executed, stable))


def _moved_to_view_1_without_3() -> Net:
    """0, 1, 2 change to view 1 (the primary's pre-prepares are lost) while 3 is cut off,
    then execute a few batches in view 1."""
    net = Net.build(CFG)
    net.drop = lambda s, t, m: 3 in (s, t) or (s == 0 and type(m) is PrePrepare)
    net.submit(put("a", 1, "k", "v"), to=[0, 1, 2])
    net.deliver()
    net.fire_all(VIEW_CHANGE_TIMER)
    net.deliver()
    net.drop = lambda s, t, m: 3 in (s, t)
    run_requests(net, [put(f"s{i}", 1, "k", str(i)) for i in range(4)], to=[1])
    net.drop = None
    assert [net.cores[i].view for i in range(4)] == [1, 1, 1, 0]
    return net


def test_every_status_tick_tells_the_peers_where_this_replica_is() -> None:
    net = Net.build(CFG)
    run_requests(net, [put("a", 1, "k", "v")])
    actions = net.handle(2, TimerFired(STATUS_TIMER))
    (status,) = [a.msg for a in actions if type(a) is Broadcast]
    assert status == Status(2, 0, 1, 0)
    assert net.timers[2][STATUS_TIMER] == CFG.status_interval_s  # re-armed


def test_a_replica_in_an_older_view_is_handed_the_new_view_and_joins() -> None:
    net = _moved_to_view_1_without_3()
    net.fire(3, STATUS_TIMER)  # 3 says it is in view 0
    net.deliver()
    core = net.cores[3]
    assert core.view == 1 and not core.in_view_change
    nvs = [
        a for i in (0, 1, 2) for a in net.events[i] if type(a) is Send and type(a.msg) is NewView
    ]
    assert len(nvs) == 3  # each peer sends it once per status interval
    for _ in range(2):  # the peers' statuses show it is behind; the gap lasts: it fetches
        net.fire_all(STATUS_TIMER)
        net.deliver()
    assert not net.rejected(3)
    # it fetched the batches it missed and takes part again
    assert core.last_executed == net.cores[1].last_executed
    run_requests(net, [put("b", 1, "k", "w")], to=[1])
    assert {c.last_executed for c in net.cores.values()} == {core.last_executed}
    assert len({c.state_digest for c in net.cores.values()}) == 1


def test_the_new_view_is_sent_at_most_once_per_status_interval() -> None:
    net = _moved_to_view_1_without_3()
    core = net.cores[1]
    sends = [a for _ in range(3) for a in core.handle(_status(3, 0, 0)) if type(a) is Send]
    assert len(sends) == 1 and type(sends[0].msg) is NewView
    net.handle(1, TimerFired(STATUS_TIMER))
    assert [type(a.msg) for a in core.handle(_status(3, 0, 0)) if type(a) is Send] == [NewView]


def test_a_forged_new_view_does_not_move_a_replica() -> None:
    net = _moved_to_view_1_without_3()
    (nv,) = [a.msg for a in net.cores[1].handle(_status(3, 0, 0)) if type(a) is Send]
    core = net.cores[3]
    fewer = attrs.evolve(nv, view_changes=nv.view_changes[:2])
    core.handle(MessageReceived(2, fewer))
    higher = attrs.evolve(nv, view=5)
    core.handle(MessageReceived(2, higher))
    assert core.view == 0
    assert {r.reason for r in net.rejected(3)} <= {
        "bad_signature",
        "bad_certificate",
        "not_primary",
    }
    core.handle(MessageReceived(2, nv))  # relayed by anyone, checked as any NewView
    assert core.view == 1


def test_peers_ahead_make_a_restarted_replica_fetch_at_once() -> None:
    net = Net.build(CFG)
    net.crash(3)
    run_requests(net, [put(f"s{i}", 1, f"k{i}", str(i)) for i in range(6)])
    net.recover(3, CFG)
    core = net.cores[3]
    assert core.last_executed == 0
    actions = core.handle(_status(0, 0, 3))
    assert FetchState(3) in actions and core.fetching == 3
    net.apply(3, actions)
    net.deliver()
    assert core.last_executed == 3 and core.fetching is None


def test_a_small_gap_is_fetched_only_when_it_outlives_a_status_interval() -> None:
    net = Net.build(CFG)
    core = net.cores[3]
    assert core.handle(_status(0, 0, 2)) == []  # peers are often a little ahead
    net.handle(3, TimerFired(STATUS_TIMER))
    assert net.of_type(3, FetchState) == []
    net.handle(3, TimerFired(STATUS_TIMER))  # still behind what they said a tick ago
    assert net.of_type(3, FetchState) == [FetchState(2)]


def test_a_replica_that_is_behind_fetches_instead_of_changing_view() -> None:
    net = Net.build(CFG)
    core = net.cores[3]
    net.submit(put("a", 1, "k", "v"), to=[3])
    net.queue.clear()
    for peer in (0, 1):  # f + 1 peers report executing beyond it
        core.handle(_status(peer, 0, 5))
    actions = net.handle(3, TimerFired(VIEW_CHANGE_TIMER))
    assert not core.in_view_change
    assert FetchState(5) in actions and VIEW_CHANGE_TIMER in net.timers[3]
    # one peer alone cannot hold a view change off
    net2 = Net.build(CFG)
    net2.submit(put("a", 1, "k", "v"), to=[3])
    net2.queue.clear()
    net2.cores[3].handle(_status(0, 0, 5))
    net2.handle(3, TimerFired(VIEW_CHANGE_TIMER))
    assert net2.cores[3].in_view_change


def test_a_cut_off_replica_does_not_start_a_view_change() -> None:
    net = Net.build(CFG)
    core = net.cores[3]
    net.submit(put("a", 1, "k", "v"), to=[3])
    net.queue.clear()
    net.handle(3, TimerFired(STATUS_TIMER))
    net.handle(3, TimerFired(STATUS_TIMER))  # two intervals without hearing anyone
    net.handle(3, TimerFired(VIEW_CHANGE_TIMER))
    assert not core.in_view_change and VIEW_CHANGE_TIMER in net.timers[3]
    core.handle(_status(1, 0, 0))
    core.handle(_status(2, 0, 0))  # 2f peers heard: a view change could succeed
    net.handle(3, TimerFired(VIEW_CHANGE_TIMER))
    assert core.in_view_change


def test_a_view_change_is_announced_again_on_every_status_tick() -> None:
    net = Net.build(CFG)
    net.submit(put("a", 1, "k", "v"), to=[3])
    net.queue.clear()
    net.handle(3, TimerFired(VIEW_CHANGE_TIMER))
    actions = net.handle(3, TimerFired(STATUS_TIMER))
    sent = [type(a.msg).__name__ for a in actions if type(a) is Broadcast]
    assert sent == ["Status", "ViewChange"]


def test_a_restart_keeps_the_new_view_and_certificates_received_while_catching_up() -> None:
    net = _moved_to_view_1_without_3()
    for _ in range(3):
        net.fire_all(STATUS_TIMER)
        net.deliver()
    core = net.cores[3]
    executed = core.last_executed
    assert executed > core.stable_checkpoint  # some of it only by certificates
    assert any(type(r) is NewViewRecord and r.new_view.view == 1 for r in net.stored[3])
    net.crash(3)
    actions = net.recover(3, CFG)
    again = net.cores[3]
    assert again.view == 1 and again.last_executed == executed
    assert [a.seq for a in actions if type(a) is Executed][-1] == executed
    # and it can hand the proof of view 1 to a replica still in view 0
    assert any(type(a) is Send and type(a.msg) is NewView for a in again.handle(_status(0, 0, 0)))


def test_a_state_response_without_snapshot_still_makes_its_checkpoint_stable() -> None:
    net = Net.build(CFG)
    # replica 3 executes everything but misses every checkpoint vote
    net.drop = lambda s, t, m: t == 3 and type(m).__name__ == "Checkpoint"
    run_requests(net, [put(f"s{i}", 1, f"k{i}", str(i)) for i in range(10)])
    net.drop = None
    core = net.cores[3]
    assert core.last_executed == 5 and core.stable_checkpoint == 0
    (send,) = net.cores[1].handle(MessageReceived(3, _request(core.last_executed - 1)))
    assert send.msg.snapshot == b"" and send.msg.proof
    core.handle(MessageReceived(1, send.msg))
    assert core.stable_checkpoint == 4


def _request(after: int):
    from node.protocol.messages import StateRequest

    return StateRequest(after, 3)


def test_a_backup_cut_off_right_after_it_prepared_stays_out_of_a_lone_view_change() -> None:
    """Replica 3 prepared (and ran tentatively) a batch whose commits never reach it, and
    is then cut off at the start of a status interval. The batch's requests reached it
    only in the pre-prepare, so they arm no view-change timer: it must not start a view
    change nobody else can join (it would sit in it, not voting, while the others go on
    in view 0). Once the cut heals it is level with the others, in their view. A request
    the client sends it again does arm the timer."""
    net = Net.build(CFG)
    core = net.cores[3]
    net.drop = lambda s, t, m: t == 3 and type(m).__name__ == "Commit"
    request = put("a", 1, "k", "v")
    run_requests(net, [request])
    assert core.tentative_seq == 1 and core.last_executed == 0  # prepared, not committed
    assert VIEW_CHANGE_TIMER not in net.timers[3]
    net.drop = lambda s, t, m: 3 in (s, t)  # the cut
    net.queue.clear()
    net.handle(3, TimerFired(STATUS_TIMER))
    net.handle(3, TimerFired(VIEW_CHANGE_TIMER))  # a stale firing, if any: ignored
    assert not core.in_view_change
    net.handle(3, RequestReceived(request))  # the client retransmits to every replica
    assert VIEW_CHANGE_TIMER in net.timers[3]
    net.drop = None  # healed
    for _ in range(3):
        net.fire_all(STATUS_TIMER)
        net.deliver()
    assert core.view == 0 and not core.in_view_change
    assert core.last_executed == net.cores[0].last_executed == 1
