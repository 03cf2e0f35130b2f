"""View change on four in-process cores: primary failure, prepared requests surviving,
timer doubling and reset, joining on f + 1, and a lagging replica catching up."""

from __future__ import annotations

from node.consensus.events import VIEW_CHANGE_TIMER, Send, StartTimer, ViewChanged
from node.consensus.records import ViewRecord
from node.protocol.messages import Commit, NewView, PrePrepare, ViewChange
from tests.consensus.core_helpers import Net, config, put, run_requests


def vc_delays(net: Net, i: int, since: int = 0) -> list[float]:
    return [
        a.delay_s
        for a in net.events[i][since:]
        if type(a) is StartTimer and a.timer == VIEW_CHANGE_TIMER
    ]


def test_primary_failure_leads_to_a_new_view_that_executes_the_request() -> None:
    cfg = config(batch_max=5, checkpoint_interval=5, watermark_window=10)
    net = Net.build(cfg)
    run_requests(net, [put(f"s{i}", 1, "k", str(i)) for i in range(12)])
    assert all(c.last_executed == 3 for c in net.cores.values())
    net.crash(0)
    req = put("late", 1, "k", "late")
    net.submit(req)  # the client broadcasts after its timeout
    net.deliver()
    assert all(VIEW_CHANGE_TIMER in net.timers[i] for i in (1, 2, 3))
    net.fire_all(VIEW_CHANGE_TIMER)
    net.deliver()
    for i in (1, 2, 3):
        core = net.cores[i]
        assert core.view == 1 and core.primary == 1 and not core.in_view_change
        assert ViewChanged(1, 1) in net.events[i]
        assert ViewRecord(0, 1) in net.stored[i] and ViewRecord(1, None) in net.stored[i]
        assert not net.rejected(i)
    run_requests(net, [], to=[])
    assert {net.cores[i].last_executed for i in (1, 2, 3)} == {4}
    assert sorted(net.replies_for("late", 1)) == [1, 2, 3]
    assert len({net.cores[i].state_digest for i in (1, 2, 3)}) == 1
    # the view-change timer is off again once nothing waits
    assert all(VIEW_CHANGE_TIMER not in net.timers[i] for i in (1, 2, 3))


def test_prepared_but_uncommitted_request_survives_the_view_change() -> None:
    cfg = config(batch_max=1)
    net = Net.build(cfg)
    net.drop = lambda s, t, m: type(m) is Commit  # nothing commits in view 0
    req = put("a", 1, "k", "v")
    run_requests(net, [req], to=None)
    assert all(c.last_executed == 0 for c in net.cores.values())
    original = [m for i in net.cores for r in net.stored[i] for m in [getattr(r, "msg", None)]]
    (pp0,) = {m for m in original if type(m) is PrePrepare}
    net.drop = None
    net.crash(0)
    net.fire_all(VIEW_CHANGE_TIMER)
    net.deliver()
    for i in (1, 2, 3):
        core = net.cores[i]
        assert core.view == 1 and core.last_executed == 1
        reissued = [
            r.msg
            for r in net.stored[i]
            if type(getattr(r, "msg", None)) is PrePrepare and r.msg.view == 1
        ]
        assert [(p.seq, p.digest) for p in reissued] == [(1, pp0.digest)]
    # every replica answered tentatively in view 0 (the batch prepared); the survivors
    # undid it when the view changed and answered again in view 1
    assert sorted(net.replies_for("a", 1)) == [0, 1, 2, 3]
    answers = [r for r in net.replies["client/a"] if r.timestamp == 1]
    assert {(r.view, r.replica) for r in answers if r.view == 1} == {(1, 1), (1, 2), (1, 3)}
    assert len({r.result for r in answers}) == 1


def test_view_change_timer_doubles_and_resets_after_a_successful_view() -> None:
    cfg = config(view_change_timeout_s=1.0)
    net = Net.build(cfg)
    net.crash(0)
    # the primaries of views 1 and 2 gather their view changes but their NewViews are lost
    net.drop = lambda s, t, m: type(m) is NewView and m.sender in (1, 2)
    net.submit(put("a", 1, "k", "v"))
    net.deliver()
    for _ in range(3):
        net.fire_all(VIEW_CHANGE_TIMER)
        net.deliver()
    # the request waits T; view 1 waits T for its NewView, view 2 waits 2T; view 3 starts,
    # and until something executes in it the request timer stays backed off (4T)
    assert vc_delays(net, 3) == [1.0, 1.0, 2.0, 4.0]
    live = [net.cores[i] for i in (1, 2, 3)]
    assert [c.view for c in live] == [3, 3, 3] and not any(c.in_view_change for c in live)
    run_requests(net, [], to=[])
    assert all(c.last_executed == 1 for c in live)
    mark = len(net.events[3])
    net.submit(put("b", 1, "k", "w"), to=[3])
    assert vc_delays(net, 3, mark)[:1] == [1.0]  # executed in the new view: back to T


def test_a_view_change_without_a_quorum_does_not_climb_views() -> None:
    """A replica alone in its view change (the others see no reason for one) stays at
    v + 1 and keeps executing what view v commits; it does not time out into v + 2."""
    net = Net.build(config(view_change_timeout_s=1.0))
    net.submit(put("a", 1, "k", "v"), to=[3])  # only 3 knows the request: its timer runs
    net.fire(3, VIEW_CHANGE_TIMER)
    core = net.cores[3]
    assert core.in_view_change and core.view_change_target == 1
    assert VIEW_CHANGE_TIMER not in net.timers[3]
    net.deliver()
    run_requests(net, [put(f"s{i}", 1, "k", str(i)) for i in range(4)])
    assert [c.view for c in net.cores.values()] == [0, 0, 0, 0]
    assert core.in_view_change and core.view_change_target == 1
    assert core.last_executed == net.cores[0].last_executed > 0
    assert core.state_digest == net.cores[0].state_digest


def test_a_replica_joins_when_f_plus_one_others_change_view() -> None:
    net = Net.build(config())
    net.crash(0)
    net.submit(put("a", 1, "k", "v"), to=[1, 2, 3])
    net.deliver()
    net.fire(1, VIEW_CHANGE_TIMER)
    net.deliver()
    assert net.cores[1].in_view_change and not net.cores[3].in_view_change
    net.fire(2, VIEW_CHANGE_TIMER)  # replica 3's timer never fires
    net.deliver()
    assert all(net.cores[i].view == 1 for i in (1, 2, 3))
    run_requests(net, [], to=[])
    assert all(net.cores[i].last_executed == 1 for i in (1, 2, 3))


def test_one_replica_alone_does_not_change_the_view() -> None:
    net = Net.build(config())
    net.submit(put("a", 1, "k", "v"), to=[3])  # only replica 3 hears the client
    net.queue.clear()  # ... and its forward to the primary is lost
    net.fire(3, VIEW_CHANGE_TIMER)
    net.deliver()
    assert net.cores[3].in_view_change
    assert all(net.cores[i].view == 0 and not net.cores[i].in_view_change for i in (0, 1, 2))


def test_lagging_replica_gets_the_new_view_when_it_asks_for_an_old_one() -> None:
    net = Net.build(config())
    # replica 3 is cut off, and the primary's pre-prepares are lost: 0, 1, 2 change view
    net.drop = lambda s, t, m: 3 in (s, t) or (s == 0 and type(m) is PrePrepare)
    net.submit(put("a", 1, "k", "v"), to=[0, 1, 2])
    net.deliver()
    net.fire_all(VIEW_CHANGE_TIMER)
    net.deliver()
    assert [net.cores[i].view for i in range(4)] == [1, 1, 1, 0]
    net.drop = None
    run_requests(net, [], to=[])
    assert [net.cores[i].last_executed for i in range(4)] == [1, 1, 1, 0]
    net.submit(put("b", 1, "k", "v"), to=[3])
    net.deliver()
    net.fire(3, VIEW_CHANGE_TIMER)  # 3 asks for view 1; the others answer with the NewView
    net.deliver()
    assert net.cores[3].view == 1 and not net.cores[3].in_view_change
    answered = [i for i in (0, 1, 2) if any(type(a.msg) is NewView for a in _sends(net, i))]
    assert answered == [0, 1, 2]  # relayed by everyone, made by the primary of view 1
    assert not net.rejected(3)
    run_requests(net, [put("b", 1, "k", "v")], to=None)  # the client retransmits to all
    assert {c.last_executed for c in net.cores.values()} == {2}
    assert len({c.state_digest for c in net.cores.values()}) == 1


def _sends(net: Net, i: int) -> list:
    return [a for a in net.events[i] if type(a) is Send]


def test_view_change_message_carries_stable_checkpoint_and_certificates() -> None:
    cfg = config(batch_max=1, checkpoint_interval=2, watermark_window=4)
    net = Net.build(cfg)
    run_requests(net, [put(f"s{i}", 1, "k", str(i)) for i in range(3)])
    net.drop = lambda s, t, m: type(m) is Commit
    run_requests(net, [put("x", 1, "k", "x")], to=None)
    net.drop = None
    net.crash(0)
    net.fire(1, VIEW_CHANGE_TIMER)
    (vc,) = [m for s, _, m in net.queue if type(m) is ViewChange and s == 1][:1]
    assert vc.new_view == 1 and vc.stable_seq == 2 and len(vc.checkpoint_proof) == 3
    assert [c.pre_prepare.seq for c in vc.prepared] == [3, 4]
    assert all(len(c.prepares) == 2 for c in vc.prepared)
