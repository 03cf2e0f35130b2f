"""The normal case on four in-process cores: batching, watermarks, checkpoints, GC,
and the rejection of bad protocol messages."""

from __future__ import annotations

import attrs
import pytest

from node.consensus.events import (
    BATCH_TIMER,
    Broadcast,
    CheckpointStable,
    Executed,
    FetchState,
    MessageReceived,
    Persist,
    Rejected,
    ReplyToClient,
    RequestReceived,
    StartTimer,
    TimerFired,
)
from node.consensus.records import MessageRecord, StableRecord
from node.protocol.crypto import Signer, sign_message
from node.protocol.messages import (
    Checkpoint,
    Commit,
    Prepare,
    PrePrepare,
    Reply,
    batch_digest,
)
from tests.consensus.core_helpers import (
    Net,
    config,
    make_core,
    make_request,
    put,
    replica_signer,
    run_requests,
)


def pp_of(actions) -> list[PrePrepare]:
    return [a.msg for a in actions if type(a) is Broadcast and type(a.msg) is PrePrepare]


def test_hundred_requests_commit_in_batches_with_checkpoint_and_gc() -> None:
    cfg = config(batch_max=10, checkpoint_interval=5, watermark_window=10)
    net = Net.build(cfg)
    reqs = [put(f"s{i}", 1, f"k{i}", f"v{i}") for i in range(100)]
    run_requests(net, reqs)
    digests = {c.state_digest for c in net.cores.values()}
    assert len(digests) == 1
    for i, core in net.cores.items():
        assert core.last_executed == 10
        assert core.stable_checkpoint == 10
        assert not core.in_view_change and core.view == 0
        executed = net.of_type(i, Executed)
        assert [e.seq for e in executed] == list(range(1, 11))
        assert all(e.n_requests == 10 for e in executed)
        assert [e.seq for e in net.of_type(i, CheckpointStable)] == [5, 10]
        assert not net.rejected(i) and not net.of_type(i, FetchState)
        # garbage collection: nothing below the stable checkpoint is kept
        mem = core.memory_footprint()
        assert mem["log_slots"] == 0
        assert mem["checkpoint_votes"] == 0 and mem["own_checkpoints"] == 0
        assert mem["pending_requests"] == 0 and mem["queued_requests"] == 0
        assert mem["clients"] == 100
        stables = [r for r in net.stored[i] if type(r) is StableRecord]
        assert [r.seq for r in stables] == [5, 10]
        assert all(len(r.proof) == 3 for r in stables)
    for i in range(100):
        replies = net.replies_for(f"s{i}", 1)
        assert sorted(replies) == [0, 1, 2, 3]
        assert len(set(replies.values())) == 1


def test_primary_holds_requests_back_when_the_window_is_full() -> None:
    cfg = config(batch_max=2, checkpoint_interval=2, watermark_window=4)
    net = Net.build(cfg)
    primary = net.cores[0]
    for i in range(20):
        net.submit(put(f"s{i}", 1, "k", str(i)), to=[0])
    proposed = [m for _, _, m in net.queue if type(m) is PrePrepare]
    assert sorted({m.seq for m in proposed}) == [1, 2, 3, 4]  # up to H = 0 + 4
    assert primary.memory_footprint()["queued_requests"] == 12
    net.deliver()
    assert all(c.last_executed == 10 for c in net.cores.values())
    assert all(c.stable_checkpoint == 10 for c in net.cores.values())


def test_partial_batch_waits_for_the_batch_timer() -> None:
    cfg = config(batch_max=10, batch_timeout_s=0.05)
    net = Net.build(cfg)
    actions = []
    for i in range(3):
        actions += net.handle(0, _request_event(put(f"s{i}", 1, "k", "v")))
    assert not pp_of(actions)
    assert StartTimer(BATCH_TIMER, 0.05) in actions
    assert sum(1 for a in actions if type(a) is StartTimer and a.timer == BATCH_TIMER) == 1
    net.queue.clear()
    fired = net.handle(0, _timer_event(BATCH_TIMER))
    (pp,) = pp_of(fired)
    assert len(pp.batch) == 3 and pp.seq == 1
    # the pre-prepare is persisted before it is broadcast
    kinds = [type(a) for a in fired]
    assert kinds.index(Persist) < kinds.index(Broadcast)
    net.deliver()
    assert all(c.last_executed == 1 for c in net.cores.values())


def test_full_batch_is_cut_at_once_and_zero_timeout_means_no_waiting() -> None:
    net = Net.build(config(batch_max=2))
    actions = net.handle(0, _request_event(put("a", 1, "k", "v")))
    actions += net.handle(0, _request_event(put("b", 1, "k", "v")))
    assert len(pp_of(actions)) == 1
    net0 = Net.build(config(batch_timeout_s=0))
    (pp,) = pp_of(net0.handle(0, _request_event(put("a", 1, "k", "v"))))
    assert len(pp.batch) == 1


def test_stale_batch_timer_is_ignored() -> None:
    net = Net.build(config())
    assert net.handle(0, _timer_event(BATCH_TIMER)) == []
    assert net.handle(1, _timer_event("no_such_timer")) == []


def test_persisted_records_cover_the_log() -> None:
    net = Net.build(config(batch_max=1))
    run_requests(net, [put("s", 1, "k", "v")])
    kinds = {
        type(r.msg).__name__ for i in net.cores for r in net.stored[i] if type(r) is MessageRecord
    }
    assert kinds == {"PrePrepare", "Prepare", "Commit"}
    backup_records = [r for r in net.stored[1] if type(r) is MessageRecord]
    assert {(type(r.msg).__name__, r.msg.sender) for r in backup_records} >= {
        ("PrePrepare", 0),
        ("Prepare", 1),
        ("Commit", 1),
    }
    assert all(r.seq == 1 and r.key.endswith(f"/1/{r.msg.sender}") for r in backup_records)


# --- rejections ----------------------------------------------------------------------------


def _request_event(req):
    return RequestReceived(req)


def _timer_event(name):
    return TimerFired(name)


def _signed(msg, i):
    return sign_message(msg, replica_signer(i))


def _pp(view=0, seq=1, sender=0, batch=None, digest=None):
    batch = (put("x", 1, "k", "v"),) if batch is None else batch
    digest = batch_digest(batch) if digest is None else digest
    return _signed(PrePrepare(view, seq, digest, batch, sender), sender)


def _feed(core, sender, msg):
    return core.handle(MessageReceived(sender, msg))


def _reasons(actions) -> list[str]:
    return [a.reason for a in actions if type(a) is Rejected]


@pytest.fixture
def backup():
    return make_core(config(), 1)


def test_accepts_a_good_pre_prepare(backup) -> None:
    actions = _feed(backup, 0, _pp())
    assert not _reasons(actions)
    (prepare,) = [a.msg for a in actions if type(a) is Broadcast]
    assert type(prepare) is Prepare and prepare.sender == 1


def test_rejects_non_members_and_sender_mismatch(backup) -> None:
    assert _reasons(_feed(backup, 9, _pp())) == ["unknown_sender"]
    assert _reasons(_feed(backup, 2, _pp())) == ["sender_mismatch"]
    assert _reasons(_feed(backup, 1, _pp())) == ["unknown_sender"]  # from itself


def test_rejects_bad_signatures(backup) -> None:
    forged = attrs.evolve(_pp(), signature=replica_signer(3).sign(_pp().payload))
    assert _reasons(_feed(backup, 0, forged)) == ["bad_signature"]
    bad_prepare = attrs.evolve(_signed(Prepare(0, 1, bytes(32), 2), 2), signature=bytes(64))
    assert _reasons(_feed(backup, 2, bad_prepare)) == ["bad_signature"]
    req = put("x", 1, "k", "v")
    bad_req = attrs.evolve(req, signature=bytes(64))
    assert _reasons(_feed(backup, 0, _pp(batch=(bad_req,)))) == ["bad_signature"]


def test_rejects_wrong_view_and_not_primary(backup) -> None:
    assert _reasons(_feed(backup, 2, _pp(sender=2))) == ["not_primary"]
    assert _reasons(_feed(backup, 0, _pp(view=4))) == ["wrong_view"]
    assert _reasons(_feed(backup, 2, _signed(Prepare(7, 1, bytes(32), 2), 2))) == ["wrong_view"]
    # a prepare from the primary of its view
    assert _reasons(_feed(backup, 0, _signed(Prepare(0, 1, bytes(32), 0), 0))) == ["wrong_role"]


def test_rejects_sequence_outside_the_watermarks(backup) -> None:
    high = backup.high_watermark
    assert _reasons(_feed(backup, 0, _pp(seq=high + 1))) == ["out_of_window"]
    assert not _reasons(_feed(backup, 0, _pp(seq=high)))
    assert _reasons(_feed(backup, 2, _signed(Commit(0, high + 1, bytes(32), 2), 2))) == [
        "out_of_window"
    ]


def test_rejects_digest_mismatch(backup) -> None:
    assert _reasons(_feed(backup, 0, _pp(digest=bytes(32)))) == ["digest_mismatch"]


def test_rejects_a_second_different_pre_prepare(backup) -> None:
    assert not _reasons(_feed(backup, 0, _pp()))
    assert _feed(backup, 0, _pp()) == []  # the same one again: silently dropped
    other = _pp(batch=(put("y", 1, "k", "other"),))
    assert _reasons(_feed(backup, 0, other)) == ["equivocation"]


def test_rejects_equivocating_votes_and_drops_duplicates(backup) -> None:
    p1 = _signed(Prepare(0, 1, b"\x01" * 32, 2), 2)
    p2 = _signed(Prepare(0, 1, b"\x02" * 32, 2), 2)
    first = _feed(backup, 2, p1)
    assert first == []  # kept, and written only with the certificate it completes
    assert backup._log.slot(1).prepare_count(0, b"\x01" * 32) == 1
    assert _feed(backup, 2, p1) == []
    assert _reasons(_feed(backup, 2, p2)) == ["equivocation"]
    c1 = _signed(Checkpoint(10, b"\x01" * 32, 2), 2)
    c2 = _signed(Checkpoint(10, b"\x02" * 32, 2), 2)
    assert _feed(backup, 2, c1) == [] and _feed(backup, 2, c1) == []
    assert _reasons(_feed(backup, 2, c2)) == ["equivocation"]
    odd = _signed(Checkpoint(7, b"\x01" * 32, 2), 2)
    assert _reasons(_feed(backup, 2, odd)) == ["bad_certificate"]


def test_old_messages_are_dropped_silently() -> None:
    cfg = config(batch_max=1, checkpoint_interval=2, watermark_window=4)
    net = Net.build(cfg)
    run_requests(net, [put(f"s{i}", 1, "k", "v") for i in range(3)])
    core = net.cores[1]
    assert core.stable_checkpoint == 2
    assert _feed(core, 0, _pp(seq=1)) == []
    assert _feed(core, 2, _signed(Commit(0, 2, bytes(32), 2), 2)) == []
    assert _feed(core, 2, _signed(Checkpoint(2, bytes(32), 2), 2)) == []


def test_rejects_requests_from_unknown_or_forging_clients(backup) -> None:
    stranger = Signer(b"\x07" * 32)
    req = make_request("s", 1, b"op", signer=stranger)
    assert _reasons(backup.handle(_request_event(req))) == ["bad_signature"]
    unknown = sign_message(attrs.evolve(req, client="mallory/1"), stranger)
    actions = backup.handle(_request_event(unknown))
    assert [(a.sender, a.reason) for a in actions] == [("mallory/1", "unknown_sender")]
    assert _reasons(_feed(backup, 2, req)) == ["bad_signature"]  # forwarded by a peer


def test_unexpected_message_types(backup) -> None:
    assert _reasons(_feed(backup, 2, Reply(0, 1, "client/x", 2, b""))) == ["unexpected_message"]


def test_handle_is_deterministic() -> None:
    def run() -> list:
        net = Net.build(config(batch_max=3, checkpoint_interval=2, watermark_window=4))
        run_requests(net, [put(f"s{i}", 1, "k", str(i)) for i in range(10)])
        return [net.events[i] for i in net.cores] + [net.stored[i] for i in net.cores]

    assert run() == run()


def test_votes_are_written_with_the_certificate_they_complete() -> None:
    backup = make_core(config(tentative_execution=False), 1)
    pp = _pp()
    _feed(backup, 0, pp)
    p2 = _signed(Prepare(0, 1, pp.digest, 2), 2)
    p3 = _signed(Prepare(0, 1, pp.digest, 3), 3)
    actions = _feed(backup, 2, p2)  # with our own prepare, 2f: prepared, commit
    kinds = [type(a) for a in actions]
    assert kinds.index(Persist) < kinds.index(Broadcast)
    written = [r.msg for a in actions if type(a) is Persist for r in a.records]
    assert p2 in written and any(type(m) is Commit and m.sender == 1 for m in written)
    assert _feed(backup, 3, p3) == []  # beyond the certificate: never written

    c0 = _signed(Commit(0, 1, pp.digest, 0), 0)
    c2 = _signed(Commit(0, 1, pp.digest, 2), 2)
    assert _feed(backup, 0, c0) == []  # nothing depends on it yet: no write
    actions = _feed(backup, 2, c2)  # 2f + 1 commits with our own: committed, executed
    kinds = [type(a) for a in actions]
    assert kinds.index(Persist) < min(kinds.index(ReplyToClient), kinds.index(Executed))
    written = [r.msg for a in actions if type(a) is Persist for r in a.records]
    assert c0 in written and c2 in written
