"""State transfer: a lagging replica fetches a certified checkpoint; bad responses are
refused; the reply cache travels with the state."""

from __future__ import annotations

import attrs
import pytest

from node.consensus.clients import snapshot_digest
from node.consensus.events import (
    VIEW_CHANGE_TIMER,
    CheckpointStable,
    Executed,
    FetchState,
    MessageReceived,
    Rejected,
    ReplyToClient,
    RequestReceived,
    Send,
    StateTransferred,
    ViewChanged,
)
from node.consensus.records import StableRecord
from node.protocol.crypto import sign_message
from node.protocol.messages import Checkpoint, StateRequest, StateResponse
from tests.consensus.core_helpers import Net, config, put, replica_signer, run_requests

CFG = config(batch_max=2, checkpoint_interval=4, watermark_window=8)


@pytest.fixture
def lagging() -> Net:
    """Replica 3 misses 20 requests (10 sequence numbers), then comes back."""
    net = Net.build(CFG)
    net.crash(3)
    net.down.discard(3)
    net.drop = lambda s, t, m: t == 3
    run_requests(net, [put(f"s{i}", 1, f"k{i}", str(i)) for i in range(20)])
    net.drop = None
    assert [c.last_executed for c in net.cores.values()] == [10, 10, 10, 0]
    assert net.cores[0].stable_checkpoint == 8
    return net


def test_lagging_replica_fetches_state_and_catches_up(lagging: Net) -> None:
    net = lagging
    run_requests(net, [put(f"t{i}", 1, "x", str(i)) for i in range(6)])  # seqs 11..13
    core = net.cores[3]
    fetches = net.of_type(3, FetchState)
    assert [f.seq for f in fetches] == [12]
    assert net.of_type(3, StateTransferred) == [StateTransferred(12)]
    # the response carried the commit certificate of seq 13 too: caught up, not only to 12
    assert core.stable_checkpoint == 12
    assert core.last_executed == 13 == net.cores[0].last_executed
    assert core.fetching is None
    assert any(type(r) is StableRecord and r.seq == 12 for r in net.stored[3])
    # while it was behind, only pre-prepares and votes above its window were refused
    assert {r.reason for r in net.rejected(3)} == {"out_of_window"}
    # from there on it takes part normally: no further state transfer is needed
    run_requests(net, [put(f"u{i}", 1, "y", str(i)) for i in range(8)])  # seqs 14..17
    assert [f.seq for f in net.of_type(3, FetchState)] == [12]
    assert core.last_executed == 17 == net.cores[0].last_executed
    assert core.state_digest == net.cores[0].state_digest
    assert [e.seq for e in net.of_type(3, Executed)] == [13, 14, 15, 16, 17]
    rejected_before = len(net.rejected(3))
    run_requests(net, [put(f"v{i}", 1, "z", str(i)) for i in range(4)])
    assert core.last_executed == 19 and len(net.rejected(3)) == rejected_before


def test_reply_cache_travels_with_the_state(lagging: Net) -> None:
    net = lagging
    run_requests(net, [put(f"t{i}", 1, "x", str(i)) for i in range(6)])
    # replica 3 never executed s5's request, yet answers its retransmission from the cache
    actions = net.cores[3].handle(RequestReceived(put("s5", 1, "k5", "5")))
    replies = [a.reply for a in actions if type(a) is ReplyToClient]
    assert len(replies) == 1 and replies[0].replica == 3
    assert replies[0].result == net.replies_for("s5", 1)[0]


def test_state_request_is_answered_with_what_the_asker_lacks(lagging: Net) -> None:
    core = lagging.cores[1]
    assert core.last_executed == 10 and core.stable_checkpoint == 8
    # behind the stable checkpoint: the checkpoint, then the certificates above it
    (send,) = core.handle(MessageReceived(3, StateRequest(0, 3)))
    assert type(send) is Send and send.to == 3
    resp = send.msg
    assert resp.seq == 8 and resp.sender == 1 and len(resp.proof) == 3
    assert snapshot_digest(resp.snapshot) == resp.proof[0].digest
    assert [e.pre_prepare.seq for e in resp.entries] == [9, 10]
    # at or above it: the certificates only
    (send,) = core.handle(MessageReceived(3, StateRequest(9, 3)))
    assert send.msg.seq == 9 and send.msg.snapshot == b""
    assert {cp.seq for cp in send.msg.proof} == {8}  # the stable checkpoint below them
    assert [e.pre_prepare.seq for e in send.msg.entries] == [10]
    assert core.handle(MessageReceived(3, StateRequest(10, 3))) == []  # nothing newer
    assert lagging.cores[3].handle(MessageReceived(1, StateRequest(0, 1))) == []  # has nothing


def test_long_answers_are_split_under_the_response_limit(lagging: Net, monkeypatch) -> None:
    from node.consensus import transfer

    monkeypatch.setattr(transfer, "MAX_RESPONSE_BYTES", 1)
    sends = lagging.cores[1].handle(MessageReceived(3, StateRequest(0, 3)))
    parts = [s.msg for s in sends]
    assert [(p.seq, [e.pre_prepare.seq for e in p.entries]) for p in parts] == [
        (8, [9]),
        (9, [10]),
    ]
    assert parts[0].snapshot and not parts[1].snapshot and not parts[1].proof
    core = lagging.cores[3]
    for part in parts:
        core.handle(MessageReceived(1, part))
    assert core.last_executed == 10 and core.state_digest == lagging.cores[1].state_digest


def _response(net: Net) -> StateResponse:
    (send,) = net.cores[1].handle(MessageReceived(3, StateRequest(0, 3)))
    return send.msg


def test_bad_state_responses_are_rejected(lagging: Net) -> None:
    net = lagging
    good = _response(net)
    core = net.cores[3]
    too_small = attrs.evolve(good, proof=good.proof[:2])
    assert core.handle(MessageReceived(1, too_small)) == [Rejected(1, "bad_proof")]
    forged = attrs.evolve(good, proof=(*good.proof[:2], attrs.evolve(good.proof[2], sender=3)))
    assert core.handle(MessageReceived(1, forged)) == [Rejected(1, "bad_proof")]
    tampered = attrs.evolve(good, snapshot=good.snapshot + b"\x00")
    assert core.handle(MessageReceived(1, tampered)) == [Rejected(1, "bad_snapshot")]
    # a proof for a snapshot that is not a core snapshot at all
    junk = b"not a snapshot"
    proof = tuple(
        sign_message(Checkpoint(8, snapshot_digest(junk), i), replica_signer(i)) for i in range(3)
    )
    bogus = StateResponse(8, junk, proof, 1)
    assert core.handle(MessageReceived(1, bogus)) == [Rejected(1, "bad_snapshot")]
    assert core.last_executed == 0
    # the good one is accepted (unsolicited but certified and ahead of us), with the
    # committed entries above the checkpoint that it carries
    assert good.entries and [e.pre_prepare.seq for e in good.entries] == list(
        range(9, net.cores[1].last_executed + 1)
    )
    actions = core.handle(MessageReceived(1, good))
    assert StateTransferred(8) in actions and CheckpointStable(8) in actions
    assert core.last_executed == net.cores[1].last_executed > 8
    assert core.state_digest == net.cores[1].state_digest
    # and a stale one afterwards is dropped silently
    assert core.handle(MessageReceived(1, good)) == []


def _doubled(entry):  # one replica's commit twice: not 2f+1 distinct senders
    return attrs.evolve(entry, commits=(entry.commits[0], entry.commits[0], entry.commits[1]))


def _unsigned(entry):  # a commit whose signature does not verify
    bad = attrs.evolve(entry.commits[2], signature=bytes(64))
    return attrs.evolve(entry, commits=(*entry.commits[:2], bad))


def _swapped(entry):  # a batch that does not hash to the certified digest
    return attrs.evolve(entry, pre_prepare=attrs.evolve(entry.pre_prepare, batch=()))


@pytest.mark.parametrize("forge", [_doubled, _unsigned, _swapped])
def test_forged_commit_certificates_are_not_executed(lagging: Net, forge) -> None:
    net = lagging
    good = _response(net)
    core = net.cores[3]
    resp = attrs.evolve(good, entries=(forge(good.entries[0]), *good.entries[1:]))
    actions = core.handle(MessageReceived(1, resp))
    assert Rejected(1, "bad_certificate") in actions
    assert core.last_executed == 8  # the certified checkpoint, nothing above it
    assert core.state_digest != net.cores[1].state_digest


def test_checkpoints_beyond_the_window_trigger_a_single_fetch(lagging: Net) -> None:
    net = lagging
    core = net.cores[3]
    digest = net.cores[0]._ckpt.stable_digest
    for sender in (0, 1):
        cp = sign_message(Checkpoint(8, digest, sender), replica_signer(sender))
        assert core.handle(MessageReceived(sender, cp)) == []
    cp = sign_message(Checkpoint(8, digest, 2), replica_signer(2))
    assert core.handle(MessageReceived(2, cp)) == [FetchState(8)]
    assert core.fetching == 8
    assert core.stable_checkpoint == 8  # the low watermark moved already


def test_replica_behind_after_a_new_view_fetches_min_s(lagging: Net) -> None:
    net = lagging
    net.crash(0)  # the primary fails: 1, 2 and the lagging 3 must change view together
    net.submit(put("late", 1, "k", "v"), to=[1, 2, 3])
    net.deliver()
    net.fire_all(VIEW_CHANGE_TIMER)
    net.deliver()
    assert ViewChanged(1, 1) in net.of_type(3, ViewChanged)
    assert [f.seq for f in net.of_type(3, FetchState)] == [8]  # min-s of the new view
    assert net.of_type(3, StateTransferred) == [StateTransferred(8)]
    run_requests(net, [], to=[])
    core = net.cores[3]
    assert core.view == 1 and core.last_executed == net.cores[1].last_executed == 11
    assert core.state_digest == net.cores[1].state_digest
