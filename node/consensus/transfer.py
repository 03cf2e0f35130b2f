"""Checkpoint stability and state transfer, mixed into ``ReplicaCore``.

A checkpoint ``(seq, digest)`` becomes certified when ``quorum_size()`` replicas signed it.
If this replica executed ``seq`` and its own snapshot has that digest, the checkpoint is
stable: it persists a ``StableRecord`` and garbage-collects the log, votes and snapshots at
or below ``seq`` (the low watermark moves, and the primary may propose again). Otherwise it
is behind (or, if it executed ``seq`` with another digest, diverged): it still moves its low
watermark to ``seq`` and emits ``FetchState(seq, digest)``.

The shell sends ``StateRequest``s and feeds ``StateResponse``s back. A response is accepted
if its proof holds ``quorum_size()`` valid signed checkpoints and the snapshot hashes to
the certified digest; the core then restores the app and the client table from it, sets
``last_executed = stable = seq`` and executes any committed log entries above ``seq``.
A replica answers a ``StateRequest`` with its own stable checkpoint if that is at least
the requested sequence number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.clients import decode_snapshot, snapshot_digest
from node.consensus.events import CheckpointStable, FetchState, Send, StateTransferred
from node.consensus.log import DUPLICATE, EQUIVOCATION
from node.consensus.messages import Checkpoint, CommittedEntry, StateRequest, StateResponse
from node.consensus.quorum import check_checkpoint_proof
from node.consensus.records import StableRecord

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore


class CheckpointMixin:
    def _init_transfer(self: ReplicaCore) -> None:
        #: (seq, digest) of the certified checkpoint being fetched, if any
        self._fetching: tuple[int, bytes] | None = None

    @property
    def fetching(self: ReplicaCore) -> tuple[int, bytes] | None:
        return self._fetching

    # --- checkpoint votes ---------------------------------------------------------------

    def _on_checkpoint(self: ReplicaCore, sender: int, cp: Checkpoint) -> None:
        if cp.seq <= self._ckpt.stable_seq:
            return  # merely old
        if cp.seq % self.cfg.checkpoint_interval:
            self._reject(sender, "bad_certificate")
            return
        if not self._sig_ok(cp):
            self._reject(sender, "bad_signature")
            return
        outcome = self._ckpt.add_vote(cp)
        if outcome == DUPLICATE:
            return
        if outcome == EQUIVOCATION:
            self._reject(sender, "equivocation")
            return
        self._check_stable(cp.seq)

    def _check_stable(self: ReplicaCore, seq: int) -> None:
        if seq <= self._ckpt.stable_seq:
            return
        certified = self._ckpt.certified(seq, self.quorum_size())
        if certified is not None:
            self._adopt_certified_checkpoint(seq, *certified)

    def _adopt_certified_checkpoint(
        self: ReplicaCore, seq: int, digest: bytes, proof: tuple[Checkpoint, ...]
    ) -> None:
        own = self._ckpt.own(seq)
        if own is not None and own.digest == digest and self._last_executed >= seq:
            self._make_stable(seq, digest, own.snapshot, proof)
            return
        # Behind (or diverged): move the low watermark, then fetch the certified state.
        if seq > self._ckpt.stable_seq:
            self._ckpt.set_stable(seq, digest, None, proof)  # type: ignore[arg-type]
            self._log.collect_garbage(seq)
            self._gc_future(seq)
        if self._fetching is None or seq > self._fetching[0]:
            self._fetching = (seq, digest)
            self._emit(FetchState(seq, digest))

    def _make_stable(
        self: ReplicaCore, seq: int, digest: bytes, snapshot: bytes, proof: tuple[Checkpoint, ...]
    ) -> None:
        self._ckpt.set_stable(seq, digest, snapshot, proof)
        self._log.collect_garbage(seq)
        self._gc_future(seq)
        self._persist(StableRecord(seq, digest, snapshot, proof))
        self._emit(CheckpointStable(seq))
        if self._fetching is not None and self._fetching[0] <= seq:
            self._fetching = None
        self._cut_batches(force=False)

    def _gc_future(self: ReplicaCore, seq: int) -> None:
        for key in [k for k in self._future_pps if k[1] <= seq]:
            del self._future_pps[key]

    # --- state transfer -----------------------------------------------------------------

    def _on_state_request(self: ReplicaCore, sender: int, req: StateRequest) -> None:
        ckpt = self._ckpt
        if (
            ckpt.stable_seq == 0
            or ckpt.stable_seq < req.seq
            or ckpt.stable_snapshot is None
            or self._last_executed < ckpt.stable_seq
        ):
            return
        response = StateResponse(
            ckpt.stable_seq,
            ckpt.stable_snapshot,
            ckpt.stable_proof,
            self.me,
            self._committed_entries_above(ckpt.stable_seq),
        )
        self._emit(Send(sender, response))

    def _committed_entries_above(self: ReplicaCore, seq: int) -> tuple[CommittedEntry, ...]:
        """Commit certificates for the executed batches above ``seq``, in order, up to
        the first one this replica cannot prove (it keeps 2f+1 commits per slot)."""
        entries = []
        quorum = self.quorum_size()
        for s in range(seq + 1, self._last_executed + 1):
            slot = self._log.get(s)
            pp = slot.committed if slot is not None else None
            votes = slot.commits.get((pp.view, pp.digest)) if pp is not None else None
            if not votes or len(votes) < quorum:
                break
            commits = tuple(votes[sender] for sender in sorted(votes)[:quorum])
            entries.append(CommittedEntry(pp, commits))
        return tuple(entries)

    def _on_state_response(self: ReplicaCore, sender: int, resp: StateResponse) -> None:
        target = self._fetching
        wanted = resp.seq > self._last_executed or (target is not None and resp.seq >= target[0])
        if not wanted or resp.seq < self._ckpt.stable_seq:
            return
        digest = check_checkpoint_proof(resp.proof, resp.seq, self._certs())
        if digest is None:
            self._reject(sender, "bad_proof")
            return
        if snapshot_digest(resp.snapshot) != digest:
            self._reject(sender, "bad_snapshot")
            return
        try:
            app_snapshot, clients = decode_snapshot(resp.snapshot)
            self.app.restore(app_snapshot)
        except ValueError:
            self._reject(sender, "bad_snapshot")
            return
        self._clients = clients
        self._last_executed = resp.seq
        self._next_seq = max(self._next_seq, resp.seq + 1)
        self._ckpt.drop_own_above(resp.seq)
        for client, req in list(self._pending.items()):
            if req.timestamp <= clients.last_timestamp(client):
                self._forget_request(client, req.timestamp)
        self._emit(StateTransferred(resp.seq))
        self._make_stable(resp.seq, digest, resp.snapshot, resp.proof)
        self._adopt_committed_entries(sender, resp.entries)
        self._refresh_request_timer()
        self._execute_ready()

    def _adopt_committed_entries(
        self: ReplicaCore, sender: int, entries: tuple[CommittedEntry, ...]
    ) -> None:
        """Mark the slots of valid commit certificates committed (executed by the caller).

        A certificate is 2f+1 distinct replicas' valid commits for the pre-prepare's
        (view, seq, digest), and the batch must hash to that digest: at least f+1 correct
        replicas committed it, so executing it is as safe as committing it here. Not
        persisted: after a crash the replica recovers to its stable checkpoint and fetches
        again. The first invalid certificate ends the adoption and is counted."""
        quorum = self.quorum_size()
        high = self._ckpt.stable_seq + self.cfg.watermark_window
        for entry in entries:
            pp = entry.pre_prepare
            if pp.seq <= self._last_executed:
                continue
            senders = {c.sender for c in entry.commits}
            valid = (
                pp.seq <= high
                and len(senders) == len(entry.commits) >= quorum
                and self._digest_matches(pp)
                and all(
                    (c.view, c.seq, c.digest) == (pp.view, pp.seq, pp.digest) and self._sig_ok(c)
                    for c in entry.commits
                )
            )
            if not valid:
                self._reject(sender, "bad_certificate")
                return
            slot = self._log.slot(pp.seq)
            if slot.committed is None:
                slot.committed = pp
