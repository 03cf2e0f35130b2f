"""Client requests: at-most-once execution, the reply cache, forwarding, the request timer."""

from __future__ import annotations

from node.consensus.events import (
    FORWARD_TIMER,
    VIEW_CHANGE_TIMER,
    CancelTimer,
    Executed,
    MessageReceived,
    Rejected,
    ReplyToClient,
    RequestReceived,
    Send,
    StartTimer,
)
from node.protocol.crypto import sign_message
from node.protocol.messages import PrePrepare, Request, batch_digest
from tests.consensus.core_helpers import (
    Net,
    config,
    get,
    make_core,
    put,
    replica_signer,
    result_status,
    run_requests,
)

CFG = config(batch_max=4)


def test_retransmission_after_execution_gets_the_cached_reply_and_no_re_execution() -> None:
    net = Net.build(CFG)
    req = put("s", 1, "k", "v1")
    run_requests(net, [req])
    digest = net.cores[0].state_digest
    for i in range(4):
        actions = net.cores[i].handle(RequestReceived(req))
        (reply,) = [a.reply for a in actions if type(a) is ReplyToClient]
        assert reply.timestamp == 1 and reply.replica == i
        assert result_status(reply.result) == ("ok", None)
        assert not [a for a in actions if type(a) is StartTimer]
    run_requests(net, [])
    assert all(c.last_executed == 1 and c.state_digest == digest for c in net.cores.values())


def test_stale_requests_are_ignored_and_new_ones_execute() -> None:
    net = Net.build(CFG)
    run_requests(net, [put("s", 1, "k", "a")])
    run_requests(net, [put("s", 2, "k", "b")])
    assert net.cores[0].handle(RequestReceived(put("s", 1, "k", "a"))) == []
    run_requests(net, [get("s", 3, "k")])
    assert result_status(net.replies_for("s", 3)[1]) == ("ok", b"b")
    assert all(c.last_executed == 3 for c in net.cores.values())


def test_a_request_is_executed_once_even_if_ordered_twice() -> None:
    # a faulty primary puts the same request into two batches (and twice into one);
    # the three backups alone make the quorums
    net = Net.build(CFG)
    req = put("s", 1, "counter", "x")
    signer = replica_signer(0)
    for seq, batch in ((1, (req, req)), (2, (req,))):
        pp = sign_message(PrePrepare(0, seq, batch_digest(batch), batch, 0), signer)
        for i in (1, 2, 3):
            net.handle(i, MessageReceived(0, pp))
    net.deliver()
    for i in (1, 2, 3):
        executed = net.of_type(i, Executed)
        assert [(e.seq, e.n_requests) for e in executed] == [(1, 1), (2, 0)]
    replies = [r for r in net.replies["client/s"] if r.replica == 1]
    assert len({r.result for r in replies}) == 1  # the duplicates were answered from the cache


def test_backup_forwards_client_requests_to_the_primary_and_starts_its_timer() -> None:
    core = make_core(config(view_change_timeout_s=3.0), 2)
    req = put("s", 1, "k", "v")
    actions = core.handle(RequestReceived(req))
    assert StartTimer(VIEW_CHANGE_TIMER, 3.0) in actions
    assert StartTimer(FORWARD_TIMER, 1.5) in actions
    assert Send(0, req) in actions
    # a client retransmission is forwarded again; the timer keeps running
    again = core.handle(RequestReceived(req))
    assert again == [Send(0, req)]
    # a request forwarded by a peer is tracked but not forwarded further
    other = put("t", 1, "k", "v")
    assert core.handle(MessageReceived(1, other)) == []


def test_a_forwarded_request_the_primary_lost_is_forwarded_again_before_the_timeout() -> None:
    # an overloaded primary dropped the forwarded copy (a full inbox): half-way through the
    # wait the backup sends it again, it executes, and nobody changes views
    net = Net.build(config(batch_max=1, view_change_timeout_s=2.0))
    req = put("s", 1, "k", "v")
    net.drop = lambda sender, to, msg: type(msg) is Request and to == 0
    net.submit(req, to=[3])
    net.deliver()
    assert net.timers[3] == {VIEW_CHANGE_TIMER: 2.0, FORWARD_TIMER: 1.0, **_status(net, 3)}
    net.drop = None
    assert net.fire(3, FORWARD_TIMER)
    net.deliver()
    assert all(c.last_executed == 1 and c.view == 0 for c in net.cores.values())
    assert VIEW_CHANGE_TIMER not in net.timers[3] and FORWARD_TIMER not in net.timers[3]


def test_backups_forward_waiting_requests_to_the_new_primary_when_they_enter_its_view() -> None:
    net = Net.build(config(batch_max=1, view_change_timeout_s=2.0))
    req = put("s", 1, "k", "v")
    net.drop = lambda sender, to, msg: type(msg) is Request
    net.submit(req, to=[2, 3])  # the primary never hears of it, nor does replica 1
    net.deliver()
    net.drop = None
    net.fire(2, VIEW_CHANGE_TIMER)
    net.fire(3, VIEW_CHANGE_TIMER)
    net.deliver()
    assert all(c.view == 1 and c.last_executed == 1 for c in net.cores.values())


def test_the_primary_arms_no_forward_timer() -> None:
    core = make_core(config(view_change_timeout_s=2.0), 0)
    actions = core.handle(RequestReceived(put("s", 1, "k", "v")))
    assert StartTimer(VIEW_CHANGE_TIMER, 2.0) in actions
    assert not [a for a in actions if type(a) is StartTimer and a.timer == FORWARD_TIMER]


def _status(net: Net, i: int) -> dict[str, float]:
    return {k: v for k, v in net.timers[i].items() if k not in (VIEW_CHANGE_TIMER, FORWARD_TIMER)}


def test_primary_takes_forwarded_requests() -> None:
    net = Net.build(config(batch_max=1))
    net.submit(put("s", 1, "k", "v"), to=[3])
    net.deliver()
    assert all(c.last_executed == 1 for c in net.cores.values())
    assert sorted(net.replies_for("s", 1)) == [0, 1, 2, 3]


def test_request_timer_is_restarted_while_requests_wait_and_cancelled_after() -> None:
    net = Net.build(config(batch_max=1, view_change_timeout_s=2.0))
    net.submit(put("a", 1, "k", "1"), to=[0, 1, 2, 3])
    net.submit(put("b", 1, "k", "2"), to=[1])  # only backup 1 knows b (and forwards it)
    net.deliver()
    timers = [
        a
        for a in net.events[1]
        if type(a) in (StartTimer, CancelTimer) and a.timer == VIEW_CHANGE_TIMER
    ]
    assert timers[0] == StartTimer(VIEW_CHANGE_TIMER, 2.0)
    assert timers[-1] == CancelTimer(VIEW_CHANGE_TIMER)
    assert VIEW_CHANGE_TIMER not in net.timers[1]


def test_too_many_pending_requests_are_refused() -> None:
    core = make_core(config(max_pending=2), 1)
    for i in range(2):
        core.handle(RequestReceived(put(f"s{i}", 1, "k", "v")))
    assert core.handle(RequestReceived(put("s9", 1, "k", "v"))) == [
        Rejected("client/s9", "overloaded")
    ]
    # a newer request of a session already pending replaces it
    actions = core.handle(RequestReceived(put("s0", 2, "k", "v")))
    assert not [a for a in actions if type(a) is Rejected]
