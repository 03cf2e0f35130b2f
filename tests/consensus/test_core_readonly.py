"""Read-only requests (`node/consensus/readonly.py`): answered from executed state without
being ordered, but only once what the replica had prepared when the read arrived is
executed; never for an operation that changes state; never recorded."""

from __future__ import annotations

from node.app.kv import op_get, op_put
from node.consensus.events import MessageReceived, Persist, RequestReceived
from node.consensus.readonly import ReadQueue
from node.protocol.crypto import sign_message
from node.protocol.messages import Commit, PrePrepare, ReadRequest
from tests.consensus.core_helpers import (
    CLIENT,
    Net,
    config,
    put,
    result_status,
    run_requests,
)


def read(session: str, ts: int, key: str) -> ReadRequest:
    return sign_message(ReadRequest(f"client/{session}", ts, op_get(key)), CLIENT)


def test_a_read_is_answered_at_once_from_executed_state_and_leaves_no_trace() -> None:
    net = Net.build(config())
    run_requests(net, [put("a", 1, "k", "v1")])
    stored_before = {i: len(net.stored[i]) for i in net.cores}
    net.submit(read("b", 1, "k"))
    replies = net.replies_for("b", 1)
    assert set(replies) == {0, 1, 2, 3}
    assert {result_status(r) for r in replies.values()} == {("ok", b"v1")}
    # nothing ordered, nothing persisted, no client-table entry: a later write by the same
    # session with the same timestamp is still new
    assert {i: len(net.stored[i]) for i in net.cores} == stored_before
    assert all(len(net.of_type(i, PrePrepare)) <= 1 for i in net.cores)  # the put's only
    run_requests(net, [put("b", 1, "k", "v2")])
    assert net.cores[0].last_executed == 2  # ts 1 of session b was still new


def test_a_read_waits_for_what_was_prepared_when_it_arrived() -> None:
    net = Net.build(config())
    run_requests(net, [put("a", 1, "k", "v1")])
    # replica 3 prepares the next put but does not see the commits yet
    held: list[tuple[int, int, object]] = []
    net.drop = lambda s, r, m: r == 3 and type(m) is Commit and not held.append((s, r, m))
    net.submit(put("a", 2, "k", "v2"), to=[0])
    net.fire(0, "batch")
    net.deliver()
    core3 = net.cores[3]
    assert core3.last_executed == 1 and core3._log.prepared_top == 2
    net.submit(read("b", 1, "k"), to=[3])
    assert net.replies_for("b", 1) == {}  # v1 would be stale: it waits
    net.drop = None
    for sender, receiver, msg in held:
        net.handle(receiver, MessageReceived(sender, msg))
    assert core3.last_executed == 2
    assert result_status(net.replies_for("b", 1)[3]) == ("ok", b"v2")


def test_a_read_of_a_write_is_refused_and_a_bad_signature_too() -> None:
    net = Net.build(config())
    sneaky = sign_message(ReadRequest("client/x", 1, op_put("k", "v")), CLIENT)
    net.handle(0, RequestReceived(sneaky))
    assert [r.reason for r in net.rejected(0)] == ["not_read_only"]
    forged = ReadRequest("client/x", 2, op_get("k"), signature=b"\x00" * 64)
    net.handle(1, RequestReceived(forged))
    assert [r.reason for r in net.rejected(1)] == ["bad_signature"]
    assert net.replies_for("x", 1) == {} and net.replies_for("x", 2) == {}
    assert not any(type(a) is Persist for i in net.cores for a in net.events[i][1:])


def test_a_read_from_a_peer_link_is_unexpected() -> None:
    net = Net.build(config())
    net.handle(0, MessageReceived(1, read("b", 1, "k")))
    assert [r.reason for r in net.rejected(0)] == ["unexpected_message"]


def test_the_queue_is_bounded_and_releases_in_order() -> None:
    queue = ReadQueue(limit=2)
    a, b, c = (read("q", i, "k") for i in (1, 2, 3))
    assert queue.park(5, a) and queue.park(7, b) and not queue.park(9, c)
    assert queue.ready(4) == [] and queue.ready(6) == [a] and queue.ready(10) == [b]
    assert len(queue) == 0


def test_prepared_top_survives_recovery() -> None:
    cfg = config()
    net = Net.build(cfg)
    for i in range(1, 4):
        run_requests(net, [put(f"s{i}", 1, "k", f"v{i}")])
    top = net.cores[2]._log.prepared_top
    net.crash(2)
    net.recover(2, cfg)
    assert net.cores[2]._log.prepared_top == top >= 3
