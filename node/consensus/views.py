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

Memory: view changes are kept only for views above the current one, at most
``VIEWS_PER_SENDER`` views per sender; pre-prepares that arrive for the view being entered
before its ``NewView`` are buffered (at most one window's worth) and replayed after it.
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

VIEWS_PER_SENDER = 4
#: the view-change timeout grows to at most 2**6 = 64 times the base
MAX_TIMEOUT_DOUBLINGS = 6


class ViewChangeMixin:
    def _init_views(self: ReplicaCore) -> None:
        self._vcs: dict[int, dict[int, ViewChange]] = {}
        self._vc_views: dict[int, list[int]] = {}
        self._new_view_msg: NewView | None = None
        self._nv_sent_view = -1
        self._future_pps: dict[tuple[int, int], PrePrepare] = {}

    # --- timer --------------------------------------------------------------------------

    def _vc_timeout(self: ReplicaCore) -> float:
        doublings = min(max(self._vc_failures - 1, 0), MAX_TIMEOUT_DOUBLINGS)
        return self.cfg.view_change_timeout_s * (2**doublings)

    # --- starting a view change ---------------------------------------------------------

    def _start_view_change(self: ReplicaCore, new_view: int, reason: str) -> None:
        if new_view <= (self._vc_target if self._in_vc else self._view):
            return
        self._emit(ViewChangeStarted(self._view, new_view, reason))
        self._in_vc = True
        self._vc_target = new_view
        self._vc_failures += 1
        self._queue.clear()
        self._proposed.clear()
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
        self._store_view_change(vc)
        self._persist(ViewRecord(self._view, new_view))
        self._broadcast(vc)
        self._cancel_timer(VIEW_CHANGE_TIMER)
        self._cancel_timer(FORWARD_TIMER)
        for key in [k for k in self._future_pps if k[0] < new_view]:
            del self._future_pps[key]
        self._maybe_build_new_view(new_view)
        self._maybe_arm_vc_timer(new_view)

    def _maybe_arm_vc_timer(self: ReplicaCore, view: int) -> None:
        """In a view change to ``view`` that holds a quorum of view changes: wait for the
        ``NewView`` at most the (backed-off) timeout, then move on to the next view."""
        if (
            self._in_vc
            and self._vc_target == view
            and not self._timers.get(VIEW_CHANGE_TIMER)
            and len(self._vcs.get(view, ())) >= self.rules.quorum()
        ):
            self._start_timer(VIEW_CHANGE_TIMER, self._vc_timeout())

    def _store_view_change(self: ReplicaCore, vc: ViewChange) -> None:
        self._vcs.setdefault(vc.new_view, {})[vc.sender] = vc
        views = self._vc_views.setdefault(vc.sender, [])
        if vc.new_view not in views:
            views.append(vc.new_view)
            views.sort()
            if len(views) > VIEWS_PER_SENDER:
                evicted = views.pop(0)
                table = self._vcs.get(evicted)
                if table is not None:
                    table.pop(vc.sender, None)
                    if not table:
                        del self._vcs[evicted]

    # --- receiving view changes ---------------------------------------------------------

    def _on_view_change(self: ReplicaCore, sender: int, vc: ViewChange) -> None:
        if vc.new_view <= self._view:
            self._help_laggard(sender)
            return
        if self._in_vc and vc.new_view < self._vc_target:
            return  # merely old
        held = self._vcs.get(vc.new_view, {}).get(sender)
        if held is not None and held.signature == vc.signature:
            return  # duplicate
        if not self._sig_ok(vc):
            self._reject(sender, "bad_signature")
            return
        if not self.rules.valid_view_change(vc, self._certs()):
            self._reject(sender, "bad_certificate")
            return
        self._store_view_change(vc)
        self._maybe_join()
        self._maybe_build_new_view(vc.new_view)
        self._maybe_arm_vc_timer(vc.new_view)

    def _maybe_join(self: ReplicaCore) -> None:
        """Join the smallest higher view once f + 1 other replicas want higher views."""
        current = self._vc_target if self._in_vc else self._view
        highest: dict[int, int] = {}
        for view, senders in self._vcs.items():
            if view > current:
                for sender in senders:
                    if sender != self.me and view > highest.get(sender, -1):
                        highest[sender] = view
        if len(highest) >= self.rules.weak_quorum():
            self._start_view_change(min(highest.values()), "joined")

    # --- new view -----------------------------------------------------------------------

    def _maybe_build_new_view(self: ReplicaCore, view: int) -> None:
        if (
            self.primary_of(view) != self.me
            or not self._in_vc
            or self._vc_target != view
            or self._nv_sent_view == view
        ):
            return
        vcs = self._vcs.get(view, {})
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
        self._nv_sent_view = view
        self._enter_view(nv, plan)

    def _on_new_view(self: ReplicaCore, sender: int, nv: NewView) -> None:
        # ``sender`` relayed it; ``nv.sender`` made it (replicas resend the NewView of
        # their current view to a replica that asks for an older view).
        if nv.view <= self._view or (self._in_vc and nv.view < self._vc_target):
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
        self._view = view
        self._in_vc = False
        self._vc_target = view
        # _vc_failures stays: the timeout is back to the base once a batch executes
        self._new_view_msg = nv
        for old in [v for v in self._vcs if v <= view]:
            del self._vcs[old]
        for sender, views in self._vc_views.items():
            self._vc_views[sender] = [v for v in views if v > view]
        self._log.drop_views_below(view)
        self._queue.clear()
        self._proposed.clear()
        self._cancel_timer(BATCH_TIMER)

        am_primary = self.primary_of(view) == self.me
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
        self._emit(ViewChanged(view, self.primary_of(view)))

        if am_primary:
            self._next_seq = max(plan.max_s, plan.min_s, self._ckpt.stable_seq) + 1
        if plan.min_s > self._ckpt.stable_seq and plan.stable_digest is not None:
            self._adopt_certified_checkpoint(plan.min_s, plan.stable_digest, plan.stable_proof)
        if am_primary:
            for pp in nv.pre_prepares:
                if pp.seq > self._last_executed:
                    self._proposed.update(req.key for req in pp.batch)
            for client, req in self._pending.items():
                if req.key not in self._proposed:
                    self._queue[client] = req
        self._cancel_timer(VIEW_CHANGE_TIMER)
        self._refresh_request_timer()
        self._forward_again()  # the old primary may never have seen what waits here

        buffered = sorted(self._future_pps.items())
        self._future_pps.clear()
        for (pp_view, _seq), pp in buffered:
            if pp_view == view:
                self._on_pre_prepare(pp.sender, pp)
        for slot in list(self._log.slots()):
            pp = slot.pre_prepare
            if pp is not None and pp.view == view and pp.seq > self._ckpt.stable_seq:
                self._check_prepared(slot)
        self._cut_batches(force=False)

    def _buffer_future_pre_prepare(self: ReplicaCore, sender: int, pp: PrePrepare) -> None:
        """Keep a pre-prepare for the view being entered until its ``NewView`` arrives."""
        if sender != self.primary_of(pp.view):
            self._reject(sender, "not_primary")
            return
        if not self._seq_ok(sender, pp.seq):
            return
        key = (pp.view, pp.seq)
        if key not in self._future_pps and len(self._future_pps) < self.cfg.watermark_window:
            self._future_pps[key] = pp
