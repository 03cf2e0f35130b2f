"""View change, mixed into ``ReplicaCore``.

A replica starts a view change to ``v + 1`` when a request waits longer than the view-change
timer (``view_change_timeout_s``), or when ``f + 1`` other replicas ask for views above its
own (it joins the smallest of those). It stops taking part in the old view, broadcasts a
signed ``ViewChange`` (stable checkpoint with proof, highest-view prepared certificate per
sequence number above it) and, if it is the new primary, builds the ``NewView`` once it
holds ``2f + 1`` of them (its own included). Backups check the ``NewView``
(``viewchange.check_new_view``), enter the view, prepare the re-issued pre-prepares, and
fetch state if their stable checkpoint is below ``min-s``.

As in PBFT, the timer that moves a view change on to ``v + 2`` starts only once this
replica holds ``2f + 1`` view changes for ``v + 1``: a replica that is alone in its view
change (cut off, or the only one whose requests waited) waits there instead of climbing
views nobody else wants, and the others find it at ``v + 1`` when they need it. The timeout
doubles for every view change since this replica last executed a batch (up to
``2**MAX_TIMEOUT_DOUBLINGS`` times the base), so a view change that does not bring
progress is followed by slower ones, not by a storm. While it waits, a replica keeps
executing what the old view commits: it accepts that view's pre-prepares and commits
without voting, and executes a batch once 2f + 1 matching commits prove it.

A replica that missed view changes (restarted, cut off) gets the ``NewView`` of the later
view from the peers it reports itself to (``sync.py``) or sends a stale view change to.

State: the view numbers are ``viewstate.ViewState``, the view-change messages and the
pre-prepares buffered for the view being entered ``viewstate.ViewChanges`` (both bounded);
this module is the protocol that moves them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from node.consensus.events import (
    BATCH_TIMER,
    FORWARD_TIMER,
    VIEW_CHANGE_TIMER,
    ViewChanged,
    ViewChangeStarted,
)
from node.consensus.records import MessageRecord, NewViewRecord, ViewRecord
from node.consensus.viewchange import (
    NewViewPlan,
    certificates_above,
    plan_new_view,
)
from node.protocol.messages import NewView, Prepare, PrePrepare, ViewChange

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore


class ViewChangeMixin:
    # --- timer --------------------------------------------------------------------------

    def _vc_timeout(self: ReplicaCore) -> float:
        return self._vs.timeout(self.cfg.view_change_timeout_s)

    # --- starting a view change ---------------------------------------------------------

    def _start_view_change(self: ReplicaCore, new_view: int, reason: str) -> None:
        old_view = self._vs.view
        if not self._vs.begin(new_view):
            return
        self._emit(ViewChangeStarted(old_view, new_view, reason))
        self._undo_tentative("view_change")
        self._proposer.reset()
        self._cancel_timer(BATCH_TIMER)
        stable = self._ckpt.stable_seq
        certs = [(s.seq, s.prepared_cert) for s in self._log.slots() if s.prepared_cert]
        vc = self._sign(
            ViewChange(
                new_view,
                stable,
                self._ckpt.stable_proof,
                certificates_above(stable, certs),  # type: ignore[arg-type]
                self.me,
            )
        )
        self._vcs.store(vc)
        self._persist(ViewRecord(old_view, new_view))
        self._broadcast(vc)
        self._cancel_timer(VIEW_CHANGE_TIMER)
        self._cancel_timer(FORWARD_TIMER)
        self._vcs.drop_buffered(below_view=new_view)
        self._maybe_build_new_view(new_view)
        self._maybe_arm_vc_timer(new_view)

    def _maybe_arm_vc_timer(self: ReplicaCore, view: int) -> None:
        """In a view change to ``view`` that holds a quorum of view changes: wait for the
        ``NewView`` at most the (backed-off) timeout, then move on to the next view."""
        vs = self._vs
        if (
            vs.changing
            and vs.target == view
            and not self._timers.get(VIEW_CHANGE_TIMER)
            and len(self._vcs.for_view(view)) >= self.rules.quorum()
        ):
            self._start_timer(VIEW_CHANGE_TIMER, self._vc_timeout())

    # --- receiving view changes ---------------------------------------------------------

    def _on_view_change(self: ReplicaCore, sender: int, vc: ViewChange) -> None:
        vs = self._vs
        if vc.new_view <= vs.view:
            self._help_laggard(sender)
            return
        if vs.changing and vc.new_view < vs.target:
            return  # merely old
        held = self._vcs.for_view(vc.new_view).get(sender)
        if held is not None and held.signature == vc.signature:
            return  # duplicate
        if not self._sig_ok(vc):
            self._reject(sender, "bad_signature")
            return
        if not self.rules.valid_view_change(vc, self._certs()):
            self._reject(sender, "bad_certificate")
            return
        self._vcs.store(vc)
        self._maybe_join()
        self._maybe_build_new_view(vc.new_view)
        self._maybe_arm_vc_timer(vc.new_view)

    def _maybe_join(self: ReplicaCore) -> None:
        """Join the smallest higher view once f + 1 other replicas want higher views."""
        current = self._vs.active
        highest: dict[int, int] = {}
        for view in self._vcs.views():
            if view > current:
                for sender in self._vcs.for_view(view):
                    if sender != self.me and view > highest.get(sender, -1):
                        highest[sender] = view
        if len(highest) >= self.rules.weak_quorum():
            self._start_view_change(min(highest.values()), "joined")

    # --- new view -----------------------------------------------------------------------

    def _maybe_build_new_view(self: ReplicaCore, view: int) -> None:
        vs = self._vs
        if (
            self.primary_of(view) != self.me
            or not vs.changing
            or vs.target != view
            or self._vcs.built_view == view
        ):
            return
        vcs = self._vcs.for_view(view)
        quorum = self.rules.quorum()
        if self.me not in vcs or len(vcs) < quorum:
            return
        others = [vcs[s] for s in sorted(vcs) if s != self.me][: quorum - 1]
        chosen = (vcs[self.me], *others)
        plan = plan_new_view(view, chosen)
        pps = tuple(
            self._sign(PrePrepare(view, seq, digest, batch, self.me))
            for seq, digest, batch in plan.entries
        )
        nv = self._sign(NewView(view, chosen, pps, self.me))
        self._vcs.built_view = view
        self._enter_view(nv, plan)

    def _on_new_view(self: ReplicaCore, sender: int, nv: NewView) -> None:
        # ``sender`` relayed it; ``nv.sender`` made it (replicas resend the NewView of
        # their current view to a replica that asks for an older view).
        vs = self._vs
        if nv.view <= vs.view or (vs.changing and nv.view < vs.target):
            return  # merely old
        if nv.sender != self.primary_of(nv.view):
            self._reject(sender, "not_primary")
            return
        if not self._sig_ok(nv):
            self._reject(sender, "bad_signature")
            return
        plan = self.rules.valid_new_view(nv, self._certs())
        if plan is None:
            self._reject(sender, "bad_certificate")
            return
        self._enter_view(nv, plan)

    def _enter_view(self: ReplicaCore, nv: NewView, plan: NewViewPlan) -> None:
        view = nv.view
        self._vs.enter(view)
        self._vcs.entered(nv)
        self._log.drop_views_below(view)
        self._proposer.reset()
        self._cancel_timer(BATCH_TIMER)
        am_primary = self.primary_of(view) == self.me
        self._log_new_view(nv, am_primary)
        self._emit(ViewChanged(view, self.primary_of(view)))
        stable = self._ckpt.stable_seq
        if plan.min_s > stable and plan.stable_digest is not None:
            self._adopt_certified_checkpoint(plan.min_s, plan.stable_digest, plan.stable_proof)
        if am_primary:
            executed = self.last_executed
            self._proposer.start_view(
                max(plan.max_s, plan.min_s, stable) + 1,
                [r for pp in nv.pre_prepares if pp.seq > executed for r in pp.batch],
                self._pending.values(),
            )
        self._cancel_timer(VIEW_CHANGE_TIMER)
        self._refresh_request_timer()
        self._forward_again()  # the old primary may never have seen what waits here
        for pp in self._vcs.take_buffered(view):
            self._on_pre_prepare(pp.sender, pp)
        for slot in list(self._log.slots()):
            pp = slot.pre_prepare
            if pp is not None and pp.view == view and pp.seq > self._ckpt.stable_seq:
                self._check_prepared(slot)
        self._cut_batches(force=False)

    def _log_new_view(self: ReplicaCore, nv: NewView, am_primary: bool) -> None:
        """Put the NewView's pre-prepares into the log (a backup prepares each), persist
        them with the view, then send the NewView (primary) or the prepares (backup)."""
        view = nv.view
        records: list[Any] = [ViewRecord(view, None), NewViewRecord(nv)]
        prepares: list[Prepare] = []
        for pp in nv.pre_prepares:
            if pp.seq <= self._ckpt.stable_seq:
                continue
            slot = self._log.slot(pp.seq)
            slot.pre_prepare = pp
            slot.pp_durable = True
            records.append(MessageRecord(pp))
            if not am_primary:
                prepare = self._sign(Prepare(view, pp.seq, pp.digest, self.me))
                slot.add_prepare(prepare)
                records.append(MessageRecord(prepare))
                prepares.append(prepare)
        self._persist(*records)
        if am_primary:
            self._broadcast(nv)
        for prepare in prepares:
            self._broadcast(prepare)

    def _buffer_future_pre_prepare(self: ReplicaCore, sender: int, pp: PrePrepare) -> None:
        """Keep a pre-prepare for the view being entered until its ``NewView`` arrives."""
        if sender != self.primary_of(pp.view):
            self._reject(sender, "not_primary")
            return
        if self._seq_ok(sender, pp.seq):
            self._vcs.buffer(pp)
