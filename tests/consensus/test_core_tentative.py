"""Tentative execution in the core: reply once prepared, undo on a view change."""

from __future__ import annotations

from node.app.kv import KVStore
from node.consensus.events import (
    VIEW_CHANGE_TIMER,
    Executed,
    MessageReceived,
    Persist,
    ReplyToClient,
    RequestReceived,
    RolledBack,
    TimerFired,
)
from node.consensus.execution import Executor
from node.consensus.rules import Rules
from node.protocol.crypto import sign_message
from node.protocol.messages import Commit, Prepare, PrePrepare, batch_digest

from .core_helpers import config, make_core, put, replica_signer


def _signed(msg, i):
    return sign_message(msg, replica_signer(i))


def _pp(batch, seq=1, view=0):
    return _signed(PrePrepare(view, seq, batch_digest(batch), batch, view % 4), view % 4)


def _feed(core, sender, msg):
    return core.handle(MessageReceived(sender, msg))


def _prepared_backup(**overrides):
    """Backup 1 with seq 1 prepared in view 0 (the pre-prepare and replica 2's prepare)."""
    backup = make_core(config(**overrides), 1)
    req = put("x", 1, "k", "v")
    pp = _pp((req,))
    _feed(backup, 0, pp)
    actions = _feed(backup, 2, _signed(Prepare(0, 1, pp.digest, 2), 2))
    return backup, pp, req, actions


def test_a_prepared_batch_runs_and_replies_tentatively_after_its_certificate_is_written():
    backup, pp, _, actions = _prepared_backup()
    kinds = [type(a) for a in actions]
    (reply,) = [a.reply for a in actions if type(a) is ReplyToClient]
    assert reply.tentative and reply.timestamp == 1
    assert kinds.index(Persist) < kinds.index(ReplyToClient)
    assert Executed not in kinds  # nothing executed for good yet
    assert backup.last_executed == 0 and backup.tentative_seq == 1
    # the state digest is still that after last_executed (what /status shows)
    assert backup.state_digest == make_core(config(), 1).state_digest


def test_the_commit_settles_the_tentative_batch_without_running_it_again():
    backup, pp, _, _ = _prepared_backup()
    tentative_digest = backup._exec.app.digest()
    _feed(backup, 0, _signed(Commit(0, 1, pp.digest, 0), 0))
    actions = _feed(backup, 2, _signed(Commit(0, 1, pp.digest, 2), 2))
    assert [a for a in actions if type(a) is ReplyToClient] == []  # answered already
    assert Executed(1, 0, pp.digest, 1) in actions
    assert backup.last_executed == 1 and backup.tentative_seq is None
    assert backup.state_digest == tentative_digest


def test_a_view_change_undoes_the_tentative_batch_exactly():
    fresh = make_core(config(), 1)
    before = fresh.state_digest
    backup, pp, req, _ = _prepared_backup()
    assert backup._exec.app.digest() != before
    backup.handle(RequestReceived(req))  # the client asks again: the timer runs for it
    actions = backup.handle(TimerFired(VIEW_CHANGE_TIMER))
    assert RolledBack(1, 0, "view_change") in actions
    assert backup.tentative_seq is None and backup._exec.app.digest() == before


def test_a_retransmission_of_a_tentative_request_is_answered_tentatively_and_waits():
    backup, _, req, _ = _prepared_backup()
    actions = backup.handle(RequestReceived(req))
    (reply,) = [a.reply for a in actions if type(a) is ReplyToClient]
    assert reply.tentative
    # it waits for its batch to commit: the view-change timer runs for it
    assert backup._timers.get(VIEW_CHANGE_TIMER)


def test_off_replies_only_after_commit():
    backup, pp, _, actions = _prepared_backup(tentative_execution=False)
    assert [a for a in actions if type(a) is ReplyToClient] == []
    _feed(backup, 0, _signed(Commit(0, 1, pp.digest, 0), 0))
    actions = _feed(backup, 2, _signed(Commit(0, 1, pp.digest, 2), 2))
    (reply,) = [a.reply for a in actions if type(a) is ReplyToClient]
    assert not reply.tentative


def _batch(*ops):
    return tuple(put(f"s-{key}", 1, key, value) for key, value in ops)


def test_executor_settle_with_another_batch_undoes_the_tentative_one():
    ex = Executor(KVStore(), Rules(1))
    first = _pp(_batch(("a", "1")))
    ex.execute(first)
    before = (ex.app.digest(), ex.clients.to_wire())
    tentative = _pp(_batch(("b", "2"), ("d", "3")), seq=2)
    ex.execute(tentative, tentative=True)
    assert ex.last_executed == 1 and ex.app.digest() != before[0]
    other = _pp(_batch(("c", "4")), seq=2, view=1)
    assert not ex.settle(other)  # another batch committed there: undone
    assert (ex.app.digest(), ex.clients.to_wire()) == before
    ex.execute(other)
    assert ex.last_executed == 2 and ex.app.get(b"c") == b"4" and ex.app.get(b"b") is None


def test_executor_refuses_a_second_tentative_batch_and_a_snapshot_of_one():
    ex = Executor(KVStore(), Rules(1))
    ex.execute(_pp(_batch(("a", "1"))), tentative=True)
    for attempt in (
        lambda: ex.execute(_pp(_batch(("b", "2")), seq=2), tentative=True),
        ex.snapshot,
    ):
        try:
            attempt()
        except RuntimeError:
            continue
        raise AssertionError("expected RuntimeError")
