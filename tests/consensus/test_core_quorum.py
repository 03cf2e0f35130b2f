"""Quorum and certificate checks: prepared certificates, checkpoint proofs, view-change and
new-view messages, the new-view plan, and the overridable hooks."""

from __future__ import annotations

import attrs
import pytest

from node.consensus.events import MessageReceived, Rejected, ViewChanged
from node.consensus.quorum import (
    CertContext,
    check_checkpoint_proof,
    check_prepared_cert,
    check_view_change,
)
from node.consensus.rules import Rules
from node.consensus.viewchange import plan_new_view
from node.protocol.crypto import sign_message
from node.protocol.messages import (
    NULL_DIGEST,
    Checkpoint,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    ViewChange,
    batch_digest,
)
from tests.consensus.core_helpers import config, make_core, put, replica_signer

CFG = config(checkpoint_interval=10, watermark_window=20)
D = b"\x05" * 32


def signed(msg, i):
    return sign_message(msg, replica_signer(i))


@pytest.fixture
def core():
    return make_core(CFG, 3)


@pytest.fixture
def ctx(core) -> CertContext:
    return core._certs()


def cert(view=0, seq=11, backups=(1, 2), batch=None, tweak=None) -> PreparedCert:
    batch = (put(f"s{seq}", 1, "k", str(view)),) if batch is None else batch
    primary = view % 4
    pp = signed(PrePrepare(view, seq, batch_digest(batch), batch, primary), primary)
    prepares = tuple(signed(Prepare(view, seq, pp.digest, b), b) for b in backups)
    return PreparedCert(pp, prepares)


def proof(seq=10, digest=D, senders=(0, 1, 2)) -> tuple[Checkpoint, ...]:
    return tuple(signed(Checkpoint(seq, digest, s), s) for s in senders)


def view_change(new_view=1, sender=1, stable=10, certs=(), cps=None) -> ViewChange:
    cps = (proof(stable) if stable else ()) if cps is None else cps
    return signed(ViewChange(new_view, stable, cps, tuple(certs), sender), sender)


def new_view(view, vcs, sender=None, pps=None) -> NewView:
    sender = view % 4 if sender is None else sender
    if pps is None:
        plan = plan_new_view(view, vcs)
        pps = tuple(signed(PrePrepare(view, s, d, b, sender), sender) for s, d, b in plan.entries)
    return signed(NewView(view, tuple(vcs), tuple(pps), sender), sender)


# --- prepared certificates -----------------------------------------------------------------


def test_valid_prepared_certificate(ctx) -> None:
    assert check_prepared_cert(cert(), ctx)
    assert check_prepared_cert(cert(backups=(1, 2, 3)), ctx)
    assert check_prepared_cert(cert(view=1, backups=(0, 2)), ctx)


@pytest.mark.parametrize(
    "bad",
    [
        lambda c: attrs.evolve(c, prepares=c.prepares[:1]),  # 2f - 1 prepares
        lambda c: attrs.evolve(c, prepares=(c.prepares[0], c.prepares[0])),  # duplicate
        lambda c: attrs.evolve(  # a prepare from the primary
            c, prepares=(c.prepares[0], signed(Prepare(0, 11, c.pre_prepare.digest, 0), 0))
        ),
        lambda c: attrs.evolve(  # a prepare for another digest
            c, prepares=(c.prepares[0], signed(Prepare(0, 11, D, 2), 2))
        ),
        lambda c: attrs.evolve(  # a prepare for another seq
            c, prepares=(c.prepares[0], signed(Prepare(0, 12, c.pre_prepare.digest, 2), 2))
        ),
        lambda c: attrs.evolve(  # a forged prepare signature
            c, prepares=(c.prepares[0], attrs.evolve(c.prepares[1], signature=bytes(64)))
        ),
        lambda c: attrs.evolve(  # pre-prepare not from the view's primary
            c, pre_prepare=signed(attrs.evolve(c.pre_prepare, sender=1), 1)
        ),
        lambda c: attrs.evolve(  # batch does not match the digest
            c, pre_prepare=signed(attrs.evolve(c.pre_prepare, batch=()), 0)
        ),
        lambda c: attrs.evolve(  # forged pre-prepare signature
            c, pre_prepare=attrs.evolve(c.pre_prepare, signature=bytes(64))
        ),
    ],
)
def test_invalid_prepared_certificates(ctx, bad) -> None:
    assert not check_prepared_cert(bad(cert()), ctx)


# --- checkpoint proofs ---------------------------------------------------------------------


def test_checkpoint_proofs(ctx) -> None:
    assert check_checkpoint_proof(proof(), 10, ctx) == D
    assert check_checkpoint_proof(proof(senders=(3, 0, 2, 1)), 10, ctx) == D
    assert check_checkpoint_proof(proof(senders=(0, 1)), 10, ctx) is None
    assert check_checkpoint_proof(proof(senders=(0, 1, 1)), 10, ctx) is None
    assert check_checkpoint_proof(proof(), 20, ctx) is None
    mixed = proof()[:2] + (signed(Checkpoint(10, b"\x06" * 32, 2), 2),)
    assert check_checkpoint_proof(mixed, 10, ctx) is None
    forged = proof()[:2] + (attrs.evolve(proof()[2], signature=bytes(64)),)
    assert check_checkpoint_proof(forged, 10, ctx) is None
    assert check_checkpoint_proof((), 0, ctx) is None


# --- view changes ---------------------------------------------------------------------------


def test_valid_view_changes(ctx) -> None:
    assert check_view_change(view_change(), ctx)
    assert check_view_change(view_change(stable=0), ctx)
    assert check_view_change(view_change(certs=[cert(seq=11), cert(seq=13)]), ctx)


@pytest.mark.parametrize(
    "vc",
    [
        lambda: view_change(cps=proof(senders=(0, 1))),  # proof too small
        lambda: view_change(cps=proof(seq=20)),  # proof for another seq
        lambda: view_change(cps=proof()[:2] + (attrs.evolve(proof()[2], signature=bytes(64)),)),
        lambda: view_change(stable=0, cps=proof()),  # genesis carries no proof
        lambda: view_change(stable=5, cps=proof(seq=5)),  # not a checkpoint seq
        lambda: view_change(certs=[cert(seq=10)]),  # at the stable checkpoint
        lambda: view_change(certs=[cert(seq=31)]),  # above the window
        lambda: view_change(certs=[cert(seq=13), cert(seq=11)]),  # not ascending
        lambda: view_change(certs=[cert(seq=11), cert(seq=11)]),  # duplicate seq
        lambda: view_change(new_view=1, certs=[cert(view=1, backups=(0, 2))]),  # view >= new
        lambda: view_change(certs=[cert(backups=(1,))]),  # bad certificate inside
        lambda: attrs.evolve(view_change(), signature=bytes(64)),
    ],
)
def test_invalid_view_changes(ctx, vc) -> None:
    assert not check_view_change(vc(), ctx)


def test_core_rejects_view_change_with_bad_checkpoint_proof(core) -> None:
    bad = view_change(sender=1, cps=proof(senders=(0, 1)))
    actions = core.handle(MessageReceived(1, bad))
    assert actions == [Rejected(1, "bad_certificate")]
    forged = attrs.evolve(view_change(sender=1), signature=bytes(64))
    assert core.handle(MessageReceived(1, forged)) == [Rejected(1, "bad_signature")]


# --- new view --------------------------------------------------------------------------------


def test_plan_picks_highest_view_certificate_and_fills_gaps_with_null_requests() -> None:
    low = cert(view=0, seq=12)
    high = cert(view=1, seq=12, backups=(0, 2))
    vcs = [
        view_change(new_view=2, sender=0, stable=10, certs=[cert(seq=11), low]),
        view_change(new_view=2, sender=1, stable=10, certs=[high, cert(seq=14)]),
        view_change(new_view=2, sender=2, stable=0),
    ]
    plan = plan_new_view(2, vcs)
    assert plan.min_s == 10 and plan.max_s == 14
    assert plan.stable_digest == D and len(plan.stable_proof) == 3
    assert [(s, d) for s, d, _ in plan.entries] == [
        (11, cert(seq=11).pre_prepare.digest),
        (12, high.pre_prepare.digest),
        (13, NULL_DIGEST),
        (14, cert(seq=14).pre_prepare.digest),
    ]
    assert plan.entries[2][2] == ()
    assert plan.entries[1][2] == high.pre_prepare.batch


def test_plan_ignores_certificates_at_or_below_min_s() -> None:
    vcs = [
        view_change(new_view=1, sender=0, stable=0, certs=[cert(seq=5)]),
        view_change(new_view=1, sender=2, stable=10),
        view_change(new_view=1, sender=3, stable=10),
    ]
    plan = plan_new_view(1, vcs)
    assert plan.min_s == plan.max_s == 10 and plan.entries == ()


def _vcs(view=1, certs=()):
    return [view_change(new_view=view, sender=s, certs=certs) for s in (0, 2, 3)]


def test_core_accepts_a_correct_new_view(core) -> None:
    nv = new_view(1, _vcs(certs=[cert(seq=11)]))
    assert core.rules.valid_new_view(nv, core._certs()) is not None
    actions = core.handle(MessageReceived(1, nv))
    assert ViewChanged(1, 1) in actions and core.view == 1
    assert not [a for a in actions if type(a) is Rejected]


def _tamper_cases():
    good_certs = [cert(seq=11), cert(seq=13)]

    def pps(view, sender, entries):
        return tuple(signed(PrePrepare(view, s, d, b, sender), sender) for s, d, b in entries)

    base = plan_new_view(1, _vcs(certs=good_certs)).entries
    return {
        "missing_pre_prepare": lambda: new_view(1, _vcs(certs=good_certs), pps=pps(1, 1, base[:2])),
        "extra_pre_prepare": lambda: new_view(
            1, _vcs(certs=good_certs), pps=pps(1, 1, (*base, (14, NULL_DIGEST, ())))
        ),
        "gap_not_null": lambda: new_view(
            1,
            _vcs(certs=good_certs),
            pps=pps(1, 1, (base[0], (12, batch_digest(base[0][2]), base[0][2]), base[2])),
        ),
        "wrong_digest": lambda: new_view(
            1, _vcs(certs=good_certs), pps=pps(1, 1, ((11, NULL_DIGEST, ()), *base[1:]))
        ),
        "batch_not_matching_digest": lambda: new_view(
            1, _vcs(certs=good_certs), pps=pps(1, 1, ((11, base[0][1], ()), *base[1:]))
        ),
        "pre_prepare_wrong_view": lambda: new_view(1, _vcs(certs=good_certs), pps=pps(0, 1, base)),
        "only_2f_view_changes": lambda: new_view(1, _vcs(certs=good_certs)[:2]),
        "duplicate_view_changes": lambda: new_view(1, [_vcs()[0], _vcs()[0], _vcs()[1]]),
        "view_change_for_other_view": lambda: new_view(1, [*_vcs()[:2], _vcs(view=2)[2]]),
        "invalid_view_change_inside": lambda: new_view(
            1, [*_vcs()[:2], view_change(sender=3, cps=proof(senders=(0, 1)))]
        ),
        "bad_signature": lambda: attrs.evolve(new_view(1, _vcs()), signature=bytes(64)),
    }


@pytest.mark.parametrize("case", sorted(_tamper_cases()))
def test_core_rejects_a_wrong_new_view(core, case) -> None:
    nv = _tamper_cases()[case]()
    actions = core.handle(MessageReceived(1, nv))
    reason = "bad_signature" if case == "bad_signature" else "bad_certificate"
    assert actions == [Rejected(1, reason)]
    assert core.view == 0


def test_new_view_from_a_non_primary_is_rejected(core) -> None:
    nv = new_view(1, _vcs(), sender=2)
    assert core.handle(MessageReceived(2, nv)) == [Rejected(2, "not_primary")]


# --- the injected rules ------------------------------------------------------------------------


def test_rules_default_to_2f_plus_1_and_f_plus_1() -> None:
    core = make_core(config(n=7, f=2), 0)
    assert core.rules.quorum() == 5 and core.rules.weak_quorum() == 3


class SmallQuorum(Rules):
    def quorum(self) -> int:
        return 2


class TrustingDigests(Rules):
    def digest_matches(self, pp: PrePrepare) -> bool:
        return True


def test_replacing_the_quorum_rule_changes_every_check(ctx) -> None:
    small = make_core(CFG, 0, SmallQuorum(CFG.f))._certs()
    assert check_checkpoint_proof(proof(senders=(0, 1)), 10, small) == D
    assert check_prepared_cert(cert(backups=(1,)), small)
    assert not check_prepared_cert(cert(backups=(1,)), ctx)


def test_replacing_the_digest_rule_lets_a_bad_pre_prepare_through() -> None:
    bad = signed(PrePrepare(0, 1, D, (put("a", 1, "k", "v"),), 0), 0)
    trusting = make_core(CFG, 1, TrustingDigests(CFG.f)).handle(MessageReceived(0, bad))
    assert not [a for a in trusting if type(a) is Rejected]
    assert make_core(CFG, 1).handle(MessageReceived(0, bad)) == [Rejected(0, "digest_mismatch")]
