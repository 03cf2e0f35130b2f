"""The normal case, mixed into ``ReplicaCore``: pre-prepare, prepare, commit, execute.

A backup accepts the primary's signed ``PrePrepare`` for the active view inside the
watermarks (its requests checked by authenticator or signature), logs it and broadcasts a
``Prepare``; ``pre-prepare + 2f prepares`` of one view is *prepared* (``Rules.prepared_cert``),
then the replica commits; ``2f + 1`` matching commits is *committed*
(``Rules.commit_cert``), whether or not this replica prepared it. Committed batches
execute in sequence order (``execution.Executor``), and every ``checkpoint_interval`` a
checkpoint is taken. During a view change a replica keeps the old view's pre-prepares and
commits (without voting) so batches it committed still execute.

Durability: a pre-prepare and this replica's own votes are persisted with the round that
sends them; another replica's votes are persisted with the certificate they complete.
After a restart (``recovery.recover``) ``_resume`` sends the commits that had prepared
but were never sent, re-executes what the log proves committed and rearms the timers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.clients import snapshot_digest
from node.consensus.events import Action, SnapshotTaken
from node.consensus.log import EQUIVOCATION, Slot
from node.consensus.log import NEW as NEW_VOTE
from node.consensus.records import MessageRecord
from node.protocol.messages import Checkpoint, Commit, Prepare, PrePrepare

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore


class NormalCaseMixin:
    def _vote_view_ok(self: ReplicaCore, sender: int, view: int) -> bool | None:
        """True: process; False: keep the vote but the view is not active (one being
        entered, or the one being left: its commits still prove batches); None: drop."""
        vs = self._vs
        active = vs.active
        if view == active:
            return not vs.changing
        if vs.changing and vs.view <= view < active:
            return False  # a view this replica left (or missed) still commits batches
        if view < active:
            return None  # merely old
        if not vs.changing and view == vs.view + 1:
            return False  # a new view may be starting: keep for when it does
        self._reject(sender, "wrong_view")
        return None

    def _seq_ok(self: ReplicaCore, sender: int, seq: int) -> bool:
        if seq <= self.low_watermark:
            return False  # merely old
        if seq > self.high_watermark:
            self._reject(sender, "out_of_window")
            return False
        return True

    def _on_pre_prepare(self: ReplicaCore, sender: int, pp: PrePrepare) -> None:
        vs = self._vs
        if vs.changing and vs.view <= pp.view < vs.target:
            self._learn_pre_prepare(sender, pp)
            return
        if vs.changing or pp.view != vs.view:
            # Not the active view: old (drop), the view being entered (keep), or wrong.
            upcoming = vs.target if vs.changing else vs.view + 1
            if pp.view < upcoming:
                return
            if pp.view == upcoming:
                self._buffer_future_pre_prepare(sender, pp)
            else:
                self._reject(sender, "wrong_view")
            return
        if sender != self.primary:
            self._reject(sender, "not_primary")
            return
        if not self._seq_ok(sender, pp.seq):
            return
        slot = self._log.slot(pp.seq)
        held = slot.pre_prepare
        if held is not None and held.view == pp.view and held.digest == pp.digest:
            return  # duplicate
        if not self._sig_ok(pp):
            self._reject(sender, "bad_signature")
            return
        if not self.rules.digest_matches(pp):
            self._reject(sender, "digest_mismatch")
            return
        if held is not None and held.view == pp.view:
            self._reject(sender, "equivocation")
            return
        counts = self.auth_counts
        for req in pp.batch:
            if self._mac_ok(req):
                counts["mac"] += 1
            elif self._request_ok(req):
                counts["signature"] += 1
            else:
                self._reject(sender, "bad_signature")
                return
        self._accept_pre_prepare(slot, pp)

    def _learn_pre_prepare(self: ReplicaCore, sender: int, pp: PrePrepare) -> None:
        """In a view change: keep a pre-prepare of a view below the target (the one being
        left, or one this replica missed) without voting for it, so that its batch
        executes if 2f + 1 commits prove it committed."""
        if sender != self.primary_of(pp.view) or not self._seq_ok(sender, pp.seq):
            return
        slot = self._log.slot(pp.seq)
        held = slot.pre_prepare
        if slot.committed is not None or (held is not None and held.view >= pp.view):
            return  # known, or equivocation that cannot matter: nothing is voted here
        if not self.rules.digest_matches(pp):
            self._reject(sender, "digest_mismatch")
            return
        if not self._sig_ok(pp):
            self._reject(sender, "bad_signature")
            return
        slot.pre_prepare = pp
        slot.pp_durable = False
        self._check_committed(slot)

    def _accept_pre_prepare(self: ReplicaCore, slot: Slot, pp: PrePrepare) -> None:
        """Backup: log ``pp`` (already checked) and vote for it."""
        slot.pre_prepare = pp
        slot.pp_durable = True
        prepare = self._sign(Prepare(pp.view, pp.seq, pp.digest, self.me))
        slot.add_prepare(prepare)
        self._persist(MessageRecord(pp), MessageRecord(prepare))
        self._broadcast(prepare)
        self._check_prepared(slot)

    def _on_vote(self: ReplicaCore, sender: int, vote: Prepare | Commit) -> None:
        active = self._vote_view_ok(sender, vote.view)
        if active is None or not self._seq_ok(sender, vote.seq):
            return
        is_prepare = type(vote) is Prepare
        if is_prepare and sender == self.primary_of(vote.view):
            self._reject(sender, "wrong_role")
            return
        slot = self._log.get(vote.seq)
        index = (
            (slot.prepare_votes if is_prepare else slot.commit_votes) if slot is not None else None
        )
        if index is not None and index.get((vote.view, sender)) == vote.digest:
            return  # duplicate
        if not self._vote_ok(vote):
            self._reject(sender, "bad_signature")
            return
        slot = self._log.slot(vote.seq)
        outcome = slot.add_prepare(vote) if is_prepare else slot.add_commit(vote)  # type: ignore[arg-type]
        if outcome == EQUIVOCATION:
            self._reject(sender, "equivocation")
            return
        if outcome != NEW_VOTE:
            return
        # Another replica's vote is written only with the certificate it completes
        # (`_check_prepared`, `_check_committed`): until then nothing this replica sends
        # depends on it, and losing it in a crash is losing it in the network.
        if active:
            if is_prepare:
                self._check_prepared(slot)
            else:
                self._check_committed(slot)
        elif not is_prepare and self._vs.changing:
            self._check_committed(slot)  # a view below the target still commits batches

    def _check_prepared(self: ReplicaCore, slot: Slot) -> None:
        pp = slot.pre_prepare
        view = self._vs.view
        if pp is None or pp.view != view or self._vs.changing:
            return
        if slot.prepared_view != view:
            cert = self.rules.prepared_cert(slot, pp)
            if cert is None:
                return
            self._log.mark_prepared(slot, view, cert)
            # the certificate is durable before the commit that claims it is sent
            self._persist(*(MessageRecord(p) for p in cert.prepares if p.sender != self.me))
            if not slot.has_commit_from(view, self.me):
                commit = self._signed_commit(view, pp.seq, pp.digest)
                slot.add_commit(commit)
                self._persist(MessageRecord(commit))
                self._broadcast(commit)
        self._check_committed(slot)
        self._try_tentative()

    def _check_committed(self: ReplicaCore, slot: Slot) -> None:
        """Committed: the pre-prepare and 2f + 1 matching commits of its view. Those prove
        that f + 1 correct replicas prepared the batch, whether or not this one did."""
        pp = slot.pre_prepare
        if slot.committed is not None or pp is None:
            return
        cert = self.rules.commit_cert(slot, pp.view, pp.digest)
        if cert is None:
            return
        votes = slot.commits.get((pp.view, pp.digest), {})
        slot.committed = pp
        slot.commit_cert = cert
        # the commit certificate is durable before anything it lets this replica do
        # (execute, reply) leaves it
        if not slot.pp_durable:
            slot.pp_durable = True
            self._persist(MessageRecord(pp))
        self._persist(*(MessageRecord(votes[s]) for s in sorted(votes) if s != self.me))
        self._execute_ready()

    # --- execution --------------------------------------------------------------------

    def _execute_ready(self: ReplicaCore) -> None:
        progressed = False
        while True:
            slot = self._log.get(self.last_executed + 1)
            if slot is None or slot.committed is None:
                break
            self._execute(slot.committed)
            progressed = True
            if self.last_executed % self.cfg.checkpoint_interval == 0:
                self._take_checkpoint()
        if progressed:
            self._vs.progressed()
            self._fetch_progress()
            self._refresh_request_timer()
            if self.cfg.max_in_flight and self._proposer:
                self._cut_batches(force=False)  # a batch left the pipeline: room for the next
        self._try_tentative()

    def _take_checkpoint(self: ReplicaCore) -> None:
        seq = self.last_executed
        snapshot = self._exec.snapshot()
        digest = snapshot_digest(snapshot)
        self._ckpt.record_own(seq, digest, snapshot)
        self._emit(SnapshotTaken(seq, digest, snapshot))
        cp = self._sign(Checkpoint(seq, digest, self.me))
        self._ckpt.add_vote(cp)
        self._broadcast(cp)
        self._check_stable(seq)

    # --- after a restart --------------------------------------------------------------

    def _resume(self: ReplicaCore, view_change_to: int | None) -> list[Action]:
        """The actions of a core just rebuilt from its records (``recovery.recover``)."""

        def resume() -> None:
            self._reports.recovering = True
            if view_change_to is not None and view_change_to > self.view:
                self._start_view_change(view_change_to, "restart")
            else:
                self._resume_commits()
            self._execute_ready()
            self._arm_status()

        return self._collect(resume)

    def _resume_commits(self: ReplicaCore) -> None:
        """Send the commit of slots that prepared in this view before the crash but whose
        own commit was not stored (so it was never sent)."""
        view = self.view
        for slot in self._log.slots():
            if slot.prepared_view == view and not slot.has_commit_from(view, self.me):
                pp = slot.pre_prepare
                assert pp is not None
                commit = self._signed_commit(view, pp.seq, pp.digest)
                slot.add_commit(commit)
                self._persist(MessageRecord(commit))
                self._broadcast(commit)
                self._check_committed(slot)
