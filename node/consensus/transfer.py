"""Checkpoint stability and state transfer, mixed into ``ReplicaCore``.

A checkpoint ``(seq, digest)`` becomes certified when ``rules.quorum()`` replicas signed it.
If this replica executed ``seq`` and its own snapshot has that digest, the checkpoint is
stable: it persists a ``StableRecord`` and garbage-collects the log, votes and snapshots at
or below ``seq`` (the low watermark moves, and the primary may propose again). Otherwise it
is behind (or, if it executed ``seq`` with another digest, diverged): it still moves its low
watermark to ``seq`` and fetches (``FetchState``, see ``sync.py`` for the other reasons).

The shell sends ``StateRequest(after=last_executed)`` to one peer at a time and feeds the
``StateResponse``s back. A peer answers with what it executed after ``after``: its stable
checkpoint (snapshot plus 2f+1 signed checkpoints) if that is above ``after``, and the
commit certificates (pre-prepare plus 2f+1 signed commits) of every batch it executed above
that, split into responses of at most ``MAX_RESPONSE_BYTES`` of entries. A snapshot is
accepted only if it hashes to the digest 2f+1 replicas signed; each certificate is checked
before its batch executes, and written to the log with it, so a restart re-executes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.clients import snapshot_digest
from node.consensus.events import CheckpointStable, Send, StateTransferred
from node.consensus.log import DUPLICATE, EQUIVOCATION
from node.consensus.quorum import check_checkpoint_proof, distinct_senders
from node.consensus.records import MessageRecord, StableRecord
from node.protocol.messages import (
    Checkpoint,
    Commit,
    CommittedEntry,
    PrePrepare,
    StateRequest,
    StateResponse,
)

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore
    from node.consensus.log import Slot

#: bytes of commit certificates per StateResponse (a snapshot alone may be larger; the
#: shell's transport splits frames above its limit)
MAX_RESPONSE_BYTES = 4 << 20


class CheckpointMixin:
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
        self._reports.executed_at_least(sender, cp.seq)
        self._check_stable(cp.seq)

    def _check_stable(self: ReplicaCore, seq: int) -> None:
        if seq <= self._ckpt.stable_seq:
            return
        certified = self._ckpt.certified(seq, self.rules.quorum())
        if certified is not None:
            self._adopt_certified_checkpoint(seq, *certified)

    def _adopt_certified_checkpoint(
        self: ReplicaCore, seq: int, digest: bytes, proof: tuple[Checkpoint, ...]
    ) -> None:
        own = self._ckpt.own(seq)
        if own is not None and own.digest == digest and self.last_executed >= seq:
            self._make_stable(seq, digest, own.snapshot, proof)
            return
        # Behind (or diverged): move the low watermark, then fetch the certified state.
        if seq > self._ckpt.stable_seq:
            self._ckpt.set_stable(seq, digest, None, proof)  # type: ignore[arg-type]
            self._log.collect_garbage(seq)
            self._vcs.drop_buffered(upto_seq=seq)
        self._request_fetch(seq)

    def _make_stable(
        self: ReplicaCore, seq: int, digest: bytes, snapshot: bytes, proof: tuple[Checkpoint, ...]
    ) -> None:
        self._ckpt.set_stable(seq, digest, snapshot, proof)
        self._log.collect_garbage(seq)
        self._vcs.drop_buffered(upto_seq=seq)
        self._persist(StableRecord(seq, digest, snapshot, proof))
        self._emit(CheckpointStable(seq))
        self._cut_batches(force=False)

    # --- answering a replica that is behind ---------------------------------------------

    def _on_state_request(self: ReplicaCore, sender: int, req: StateRequest) -> None:
        ckpt = self._ckpt
        last_executed = self.last_executed
        if last_executed <= req.after:
            return  # nothing the asker lacks
        if ckpt.stable_seq > req.after:
            # the log at or below the stable checkpoint is gone: send the checkpoint
            if ckpt.stable_snapshot is None or last_executed < ckpt.stable_seq:
                return  # fetching it ourselves
            base, snapshot, proof = ckpt.stable_seq, ckpt.stable_snapshot, ckpt.stable_proof
        else:
            # the certificates only, with the proof of the checkpoint below them: the
            # asker may hold that checkpoint without the votes that make it stable
            base, snapshot, proof = req.after, b"", ckpt.stable_proof
        entries = self._committed_entries_above(base)
        if not snapshot and not entries:
            return
        chunk: list[CommittedEntry] = []
        size = len(snapshot)
        for entry in entries:
            grown = size + _entry_size(entry)
            if chunk and grown > MAX_RESPONSE_BYTES:
                self._emit(
                    Send(sender, StateResponse(base, snapshot, proof, self.me, tuple(chunk)))
                )
                base, snapshot, proof = chunk[-1].pre_prepare.seq, b"", ()
                chunk, grown = [], _entry_size(entry)
            chunk.append(entry)
            size = grown
        self._emit(Send(sender, StateResponse(base, snapshot, proof, self.me, tuple(chunk))))

    def _committed_entries_above(self: ReplicaCore, seq: int) -> list[CommittedEntry]:
        """Commit certificates of the executed batches above ``seq``, in order, up to the
        first one this replica cannot prove."""
        entries = []
        for s in range(seq + 1, self.last_executed + 1):
            slot = self._log.get(s)
            if slot is None or slot.committed is None or not self._provable_cert(slot):
                break
            entries.append(CommittedEntry(slot.committed, slot.commit_cert))
        return entries

    def _provable_cert(self: ReplicaCore, slot: Slot) -> bool:
        """Make ``slot.commit_cert`` one whose signatures all verify (commits counted on
        their tag may carry a bad one, ``vote_auth``), from the commits the slot holds;
        False if too few verify."""
        if slot.cert_provable:
            return True
        cert = slot.commit_cert
        if not cert:
            return False
        view, digest = cert[0].view, cert[0].digest
        held = {c.sender: c for c in cert} | slot.commits.get((view, digest), {})
        proven = self._vote_auth.provable(self.verifier, held.values(), self.rules.quorum())
        if proven is None:
            return False
        slot.commit_cert, slot.cert_provable = proven, True
        return True

    # --- catching up --------------------------------------------------------------------

    def _on_state_response(self: ReplicaCore, sender: int, resp: StateResponse) -> None:
        if resp.snapshot:
            if resp.seq > self.last_executed and resp.seq >= self._ckpt.stable_seq:
                if not self._adopt_snapshot(sender, resp):
                    return
            # an older checkpoint than this replica has: its entries may still help
        elif resp.proof and resp.proof[0].seq > self._ckpt.stable_seq:
            seq = resp.proof[0].seq
            digest = check_checkpoint_proof(resp.proof, seq, self._certs())
            if digest is None:
                self._reject(sender, "bad_proof")
                return
            self._adopt_certified_checkpoint(seq, digest, resp.proof)
        self._adopt_committed_entries(sender, resp.entries)
        self._refresh_request_timer()
        self._execute_ready()
        self._fetch_progress()

    def _adopt_snapshot(self: ReplicaCore, sender: int, resp: StateResponse) -> bool:
        digest = check_checkpoint_proof(resp.proof, resp.seq, self._certs())
        if digest is None:
            self._reject(sender, "bad_proof")
            return False
        if snapshot_digest(resp.snapshot) != digest:
            self._reject(sender, "bad_snapshot")
            return False
        try:
            self._exec.restore(resp.seq, resp.snapshot)
        except ValueError:
            self._reject(sender, "bad_snapshot")
            return False
        self._proposer.skip_to(resp.seq + 1)
        self._ckpt.drop_own_above(resp.seq)
        clients = self._exec.clients
        for client, req in list(self._pending.items()):
            if req.timestamp <= clients.last_timestamp(client):
                self._forget_request(client, req.timestamp)
        self._emit(StateTransferred(resp.seq))
        self._make_stable(resp.seq, digest, resp.snapshot, resp.proof)
        return True

    def _adopt_committed_entries(
        self: ReplicaCore, sender: int, entries: tuple[CommittedEntry, ...]
    ) -> None:
        """Mark the slots of valid commit certificates committed (executed by the caller)
        and write each certificate to the log, as a replica does with the certificates it
        gathers itself. Entries above the high watermark wait for a later fetch; the first
        invalid certificate ends the adoption and is counted."""
        high = self.high_watermark
        for entry in entries:
            pp = entry.pre_prepare
            if pp.seq <= self.last_executed:
                continue
            if pp.seq > high:
                break
            slot = self._log.get(pp.seq)
            if slot is not None and slot.committed is not None:
                continue
            if not self._valid_commit_cert(pp, entry.commits):
                self._reject(sender, "bad_certificate")
                return
            slot = self._log.slot(pp.seq)
            slot.committed = pp
            slot.commit_cert = entry.commits
            slot.cert_provable = True  # every signature checked just now
            self._persist(MessageRecord(pp), *(MessageRecord(c) for c in entry.commits))

    def _valid_commit_cert(self: ReplicaCore, pp: PrePrepare, commits: tuple[Commit, ...]) -> bool:
        """2f+1 distinct replicas' valid commits for one view and ``pp``'s (seq, digest),
        and ``pp``'s batch hashes to that digest: at least f+1 correct replicas prepared
        it, so it is the batch every correct replica executes at ``pp.seq``."""
        if not self.rules.quorum() <= len(commits) <= self.cfg.n or not distinct_senders(commits):
            return False
        view = commits[0].view
        for c in commits:
            if c.view != view or c.seq != pp.seq or c.digest != pp.digest:
                return False
        if not self.rules.digest_matches(pp):
            return False
        return all(self._sig_ok(c) for c in commits)


def _entry_size(entry: CommittedEntry) -> int:
    return len(entry.pre_prepare.wire) + sum(len(c.wire) for c in entry.commits)
