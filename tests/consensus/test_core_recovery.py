"""Crash recovery from persisted records, and the records' storage rules."""

from __future__ import annotations

import pytest

from node.consensus.events import (
    STATUS_TIMER,
    VIEW_CHANGE_TIMER,
    Broadcast,
    Executed,
    MessageReceived,
    Rejected,
    StartTimer,
)
from node.consensus.records import (
    MessageRecord,
    StableRecord,
    StoredState,
    ViewRecord,
    decode_record,
    encode_record,
)
from node.protocol.crypto import sign_message
from node.protocol.messages import (
    Checkpoint,
    Commit,
    Prepare,
    PrePrepare,
    ViewChange,
    batch_digest,
)
from tests.consensus.core_helpers import Net, config, put, replica_signer, run_requests

CFG = config(batch_max=2, checkpoint_interval=4, watermark_window=8)


def test_recovered_replica_re_executes_committed_entries_and_keeps_going() -> None:
    net = Net.build(CFG)
    run_requests(net, [put(f"s{i}", 1, f"k{i}", str(i)) for i in range(13)])
    before = net.cores[2]
    assert before.last_executed == 7 and before.stable_checkpoint == 4
    digest = before.state_digest
    net.crash(2)
    actions = net.recover(2, CFG)
    after = net.cores[2]
    assert after is not before
    assert after.last_executed == 7 and after.stable_checkpoint == 4
    assert after.state_digest == digest and after.view == 0
    assert [a.seq for a in actions if type(a) is Executed] == [5, 6, 7]
    # it takes part again: with replica 3 down, the cluster needs it for every quorum
    net.crash(3)
    run_requests(net, [put(f"t{i}", 1, f"k{i}", "new") for i in range(4)])
    assert [net.cores[i].last_executed for i in (0, 1, 2)] == [9, 9, 9]
    assert len({net.cores[i].state_digest for i in (0, 1, 2)}) == 1


def test_recovery_from_the_encoded_bytes() -> None:
    net = Net.build(CFG)
    run_requests(net, [put(f"s{i}", 1, "k", str(i)) for i in range(9)])
    rows = [encode_record(r) for r in net.stored[1]]
    net.stored[1] = [decode_record(row) for row in rows]
    digest = net.cores[1].state_digest
    net.crash(1)
    net.recover(1, CFG)
    assert net.cores[1].last_executed == 5 and net.cores[1].state_digest == digest


def test_recovered_backup_does_not_accept_a_conflicting_pre_prepare() -> None:
    net = Net.build(CFG)
    net.drop = lambda s, t, m: type(m) is Commit
    run_requests(net, [put("a", 1, "k", "v")])
    net.drop = None
    net.crash(1)
    net.recover(1, CFG)
    other = (put("b", 1, "k", "evil"),)
    pp = sign_message(PrePrepare(0, 1, batch_digest(other), other, 0), replica_signer(0))
    actions = net.cores[1].handle(MessageReceived(0, pp))
    assert actions == [Rejected(0, "equivocation")]


def test_recovered_primary_never_reuses_a_sequence_number() -> None:
    net = Net.build(CFG)
    net.drop = lambda s, t, m: s == 0 and type(m) is PrePrepare  # nobody sees them
    run_requests(net, [put("a", 1, "k", "1"), put("b", 1, "k", "2"), put("c", 1, "k", "3")])
    sent = [r.msg.seq for r in net.stored[0] if type(getattr(r, "msg", None)) is PrePrepare]
    assert sent == [1, 2]
    net.drop = None
    net.crash(0)
    net.recover(0, CFG)
    run_requests(net, [put("d", 1, "k", "4")])
    seqs = [r.msg.seq for r in net.stored[0] if type(getattr(r, "msg", None)) is PrePrepare]
    assert seqs == [1, 2, 3]


def test_replica_that_crashed_during_a_view_change_resumes_it() -> None:
    net = Net.build(CFG)
    net.crash(0)
    net.submit(put("a", 1, "k", "v"), to=[1, 2, 3])
    net.deliver()
    net.fire(1, VIEW_CHANGE_TIMER)
    net.queue.clear()  # its view change is lost with the crash
    net.crash(1)
    actions = net.recover(1, CFG)
    core = net.cores[1]
    assert core.in_view_change and core.view == 0
    vcs = [a.msg for a in actions if type(a) is Broadcast and type(a.msg) is ViewChange]
    assert [vc.new_view for vc in vcs] == [1]
    # alone in its view change it does not arm the timer that would take it further
    assert not any(type(a) is StartTimer and a.timer == VIEW_CHANGE_TIMER for a in actions)
    # a message of the old view is now ignored
    p = sign_message(Prepare(0, 1, bytes(32), 2), replica_signer(2))
    assert core.handle(MessageReceived(2, p)) == []
    net.fire(2, VIEW_CHANGE_TIMER)
    net.fire(3, VIEW_CHANGE_TIMER)
    net.deliver()
    assert all(net.cores[i].view == 1 for i in (1, 2, 3))


def test_prepared_certificates_survive_recovery() -> None:
    net = Net.build(CFG)
    net.drop = lambda s, t, m: type(m) is Commit
    run_requests(net, [put("a", 1, "k", "v")], to=None)
    net.drop = None
    net.crash(0)
    net.crash(2)
    net.recover(2, CFG)
    # rebuilt from its records, the prepared batch runs tentatively again and waits for
    # its commit like any request: the view-change timer runs
    assert net.cores[2].tentative_seq == 1 and net.cores[2].last_executed == 0
    net.fire(1, VIEW_CHANGE_TIMER)
    net.fire(3, VIEW_CHANGE_TIMER)
    vc = next(m for s, _, m in net.queue if s == 1 and type(m) is ViewChange)
    assert [c.pre_prepare.seq for c in vc.prepared] == [1]
    net.deliver()
    (own,) = [a.msg for a in net.events[2] if type(a) is Broadcast and type(a.msg) is ViewChange]
    assert [c.pre_prepare.seq for c in own.prepared] == [1]  # rebuilt from its records
    assert [net.cores[i].view for i in (1, 2, 3)] == [1, 1, 1]
    assert [net.cores[i].last_executed for i in (1, 2, 3)] == [1, 1, 1]


def test_fresh_stored_state_gives_a_fresh_core() -> None:
    net = Net.build(CFG)
    net.crash(3)
    actions = net.recover(3, CFG)
    assert actions == [StartTimer(STATUS_TIMER, CFG.status_interval_s)]
    assert net.cores[3].last_executed == 0


# --- records and storage rules -------------------------------------------------------------


def _msgs():
    sig = lambda m, i: sign_message(m, replica_signer(i))  # noqa: E731
    batch = (put("a", 1, "k", "v"),)
    pp = sig(PrePrepare(0, 3, batch_digest(batch), batch, 0), 0)
    return [
        pp,
        sig(Prepare(0, 3, pp.digest, 1), 1),
        sig(Commit(0, 3, pp.digest, 2), 2),
        sig(Commit(1, 9, pp.digest, 2), 2),
    ]


def test_record_keys_and_seqs() -> None:
    pp, prepare, commit, later = (MessageRecord(m) for m in _msgs())
    assert [r.key for r in (pp, prepare, commit, later)] == [
        "pre_prepare/0/3/0",
        "prepare/0/3/1",
        "commit/0/3/2",
        "commit/1/9/2",
    ]
    assert [r.seq for r in (pp, prepare, commit, later)] == [3, 3, 3, 9]
    assert ViewRecord(2, 3).key == "view" and ViewRecord(2).seq == 0
    assert StableRecord(4, bytes(32), b"s").key == "stable"


@pytest.mark.parametrize(
    "record",
    [
        *[MessageRecord(m) for m in _msgs()],
        ViewRecord(3),
        ViewRecord(3, 5),
        StableRecord(8, bytes(32), b"snap"),
        StableRecord(
            8,
            bytes(32),
            b"snap",
            tuple(sign_message(Checkpoint(8, bytes(32), i), replica_signer(i)) for i in range(3)),
        ),
    ],
    ids=repr,
)
def test_record_round_trip(record) -> None:
    assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize("data", [b"", b"\xc1", encode_record(ViewRecord(1))[:-1], b"\x91\xa4view"])
def test_decode_record_rejects_junk(data) -> None:
    with pytest.raises(ValueError):
        decode_record(data)


def test_stored_state_applies_the_storage_rules() -> None:
    pp, prepare, commit, later = (MessageRecord(m) for m in _msgs())
    stored = StoredState.from_records(
        [
            ViewRecord(0),
            pp,
            prepare,
            commit,
            later,
            prepare,  # a replace by key
            ViewRecord(1, 2),
            StableRecord(4, bytes(32), b"snap"),  # deletes everything <= 4
        ]
    )
    assert stored.view == 1 and stored.view_change_to == 2
    assert stored.stable_seq == 4 and stored.snapshot == b"snap"
    assert stored.records == [later]
