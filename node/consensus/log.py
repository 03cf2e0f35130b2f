"""The message log: per-sequence-number slot state between the watermarks.

A ``Slot`` holds the pre-prepare accepted for the latest view, the prepare and commit votes
(keyed by ``(view, digest)`` so votes that arrive before their pre-prepare are kept), the
highest-view prepared certificate (reported in view changes) and, once committed, the
pre-prepare whose batch will be executed with the 2f+1 commits that prove it (kept across
view changes, so the slot can be handed to a replica that is catching up). The ``Log`` creates slots on demand and drops
them at garbage collection (everything at or below the stable checkpoint) and old-view
votes at a view change, so its size is bounded by the watermark window.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from node.protocol.messages import Commit, Prepare, PreparedCert, PrePrepare

#: Outcomes of adding a vote.
NEW, DUPLICATE, EQUIVOCATION = "new", "duplicate", "equivocation"


@attrs.define(slots=True, eq=False)
class Slot:
    seq: int
    pre_prepare: PrePrepare | None = None
    prepares: dict[tuple[int, bytes], dict[int, Prepare]] = attrs.Factory(dict)
    commits: dict[tuple[int, bytes], dict[int, Commit]] = attrs.Factory(dict)
    #: (view, sender) -> digest that sender voted for, to spot equivocation
    prepare_votes: dict[tuple[int, int], bytes] = attrs.Factory(dict)
    commit_votes: dict[tuple[int, int], bytes] = attrs.Factory(dict)
    prepared_cert: PreparedCert | None = None
    #: view in which this replica reached "prepared" (and sent its commit); -1 if none
    prepared_view: int = -1
    #: the pre-prepare whose batch is committed (kept across view changes)
    committed: PrePrepare | None = None
    #: the quorum of matching commits that proves ``committed``
    commit_cert: tuple[Commit, ...] = ()
    #: every signature in ``commit_cert`` verified (commits may count on their tag alone,
    #: ``vote_auth``), so the certificate may be handed to a third party as it is
    cert_provable: bool = False
    #: ``pre_prepare`` is in this replica's durable log (it was accepted, proposed,
    #: re-issued or recovered, not merely seen while this replica changed views)
    pp_durable: bool = False

    def add_prepare(self, prepare: Prepare) -> str:
        return _add_vote(self.prepares, self.prepare_votes, prepare)

    def add_commit(self, commit: Commit) -> str:
        return _add_vote(self.commits, self.commit_votes, commit)

    def prepare_count(self, view: int, digest: bytes) -> int:
        votes = self.prepares.get((view, digest))
        return len(votes) if votes else 0

    def commit_count(self, view: int, digest: bytes) -> int:
        votes = self.commits.get((view, digest))
        return len(votes) if votes else 0

    def has_commit_from(self, view: int, sender: int) -> bool:
        return (view, sender) in self.commit_votes

    def drop_views_below(self, view: int) -> None:
        """Forget votes and the pre-prepare of views before ``view``."""
        for table in (self.prepares, self.commits):
            for key in [k for k in table if k[0] < view]:
                del table[key]
        for index in (self.prepare_votes, self.commit_votes):
            for key in [k for k in index if k[0] < view]:
                del index[key]
        if self.pre_prepare is not None and self.pre_prepare.view < view:
            self.pre_prepare = None
            self.pp_durable = False


def _add_vote(
    table: dict[tuple[int, bytes], dict[int, Prepare]] | dict[tuple[int, bytes], dict[int, Commit]],
    index: dict[tuple[int, int], bytes],
    vote: Prepare | Commit,
) -> str:
    seen = index.get((vote.view, vote.sender))
    if seen is not None:
        return DUPLICATE if seen == vote.digest else EQUIVOCATION
    index[(vote.view, vote.sender)] = vote.digest
    table.setdefault((vote.view, vote.digest), {})[vote.sender] = vote  # type: ignore[assignment]
    return NEW


class Log:
    """Slots by sequence number; the caller enforces the watermarks."""

    def __init__(self) -> None:
        self._slots: dict[int, Slot] = {}
        #: the highest sequence number this replica ever reached "prepared" for (never
        #: decreases; read-only requests wait until it is executed, see readonly.py)
        self.prepared_top = 0

    def mark_prepared(self, slot: Slot, view: int, cert: PreparedCert) -> None:
        """`slot` is prepared in `view` with `cert` (this replica may now commit it)."""
        slot.prepared_cert = cert
        slot.prepared_view = view
        if slot.seq > self.prepared_top:
            self.prepared_top = slot.seq

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, seq: int) -> bool:
        return seq in self._slots

    def get(self, seq: int) -> Slot | None:
        return self._slots.get(seq)

    def slot(self, seq: int) -> Slot:
        slot = self._slots.get(seq)
        if slot is None:
            slot = self._slots[seq] = Slot(seq)
        return slot

    def seqs(self) -> list[int]:
        """Sequence numbers present, ascending."""
        return sorted(self._slots)

    def slots(self) -> Iterator[Slot]:
        """Slots in ascending sequence order."""
        for seq in sorted(self._slots):
            yield self._slots[seq]

    def collect_garbage(self, stable_seq: int) -> None:
        """Drop every slot at or below ``stable_seq``."""
        for seq in [s for s in self._slots if s <= stable_seq]:
            del self._slots[seq]

    def drop_views_below(self, view: int) -> None:
        for slot in self._slots.values():
            slot.drop_views_below(view)
