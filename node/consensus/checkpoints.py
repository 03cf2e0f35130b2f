"""Checkpoint bookkeeping: own snapshots, votes, the stable checkpoint and its proof.

Every ``checkpoint_interval`` executed sequence numbers a replica snapshots its state and
broadcasts a signed ``Checkpoint``. A checkpoint is *stable* once ``quorum`` replicas signed
the same ``(seq, digest)``; those signatures are its proof. The tracker keeps the replica's
own snapshots until they become stable or are superseded (so it can adopt them and answer
``StateRequest``s), and at most ``votes_per_sender`` checkpoint votes per peer above the
stable one, so a faulty peer cannot grow memory by voting for far-away sequence numbers.
"""

from __future__ import annotations

import attrs

from node.consensus.log import DUPLICATE, EQUIVOCATION, NEW
from node.protocol.messages import Checkpoint


@attrs.frozen
class OwnCheckpoint:
    seq: int
    digest: bytes
    snapshot: bytes


class CheckpointTracker:
    def __init__(self, genesis_digest: bytes, genesis_snapshot: bytes, votes_per_sender: int):
        self.stable_seq = 0
        self.stable_digest = genesis_digest
        self.stable_snapshot = genesis_snapshot
        self.stable_proof: tuple[Checkpoint, ...] = ()
        self.votes_per_sender = votes_per_sender
        self._own: dict[int, OwnCheckpoint] = {}
        self._votes: dict[int, dict[int, Checkpoint]] = {}
        self._by_sender: dict[int, list[int]] = {}

    # --- own checkpoints ------------------------------------------------------------------

    def record_own(self, seq: int, digest: bytes, snapshot: bytes) -> None:
        self._own[seq] = OwnCheckpoint(seq, digest, snapshot)

    def own(self, seq: int) -> OwnCheckpoint | None:
        return self._own.get(seq)

    def own_seqs(self) -> list[int]:
        return sorted(self._own)

    # --- votes ----------------------------------------------------------------------------

    def add_vote(self, cp: Checkpoint) -> str:
        votes = self._votes.setdefault(cp.seq, {})
        seen = votes.get(cp.sender)
        if seen is not None:
            return DUPLICATE if seen.digest == cp.digest else EQUIVOCATION
        votes[cp.sender] = cp
        mine = self._by_sender.setdefault(cp.sender, [])
        mine.append(cp.seq)
        if len(mine) > self.votes_per_sender:
            mine.sort()
            evicted = mine.pop(0)
            table = self._votes.get(evicted)
            if table is not None:
                table.pop(cp.sender, None)
                if not table:
                    del self._votes[evicted]
        return NEW

    def certified(self, seq: int, quorum: int) -> tuple[bytes, tuple[Checkpoint, ...]] | None:
        """``(digest, proof)`` if ``quorum`` replicas signed the same digest for ``seq``."""
        votes = self._votes.get(seq)
        if not votes or len(votes) < quorum:
            return None
        groups: dict[bytes, list[Checkpoint]] = {}
        for sender in sorted(votes):
            cp = votes[sender]
            groups.setdefault(cp.digest, []).append(cp)
        for digest, group in groups.items():
            if len(group) >= quorum:
                return digest, tuple(group[:quorum])
        return None

    def vote_count(self) -> int:
        return sum(len(v) for v in self._votes.values())

    # --- stability ------------------------------------------------------------------------

    def set_stable(
        self, seq: int, digest: bytes, snapshot: bytes, proof: tuple[Checkpoint, ...]
    ) -> None:
        """Adopt ``seq`` as stable and forget everything at or below it."""
        self.stable_seq = seq
        self.stable_digest = digest
        self.stable_snapshot = snapshot
        self.stable_proof = proof
        for s in [s for s in self._own if s <= seq]:
            del self._own[s]
        for s in [s for s in self._votes if s <= seq]:
            del self._votes[s]
        for sender, seqs in self._by_sender.items():
            self._by_sender[sender] = [s for s in seqs if s > seq]

    def drop_own_above(self, seq: int) -> None:
        """Forget own snapshots above ``seq`` (state was replaced by a transfer)."""
        for s in [s for s in self._own if s > seq]:
            del self._own[s]
