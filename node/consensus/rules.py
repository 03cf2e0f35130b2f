"""``Rules``: PBFT's quorum sizes and certificate checks, one object the core is given.

Every decision that makes the protocol safe, and that a test may want to break on purpose,
is a method here: how many votes make a quorum, when a slot is prepared or committed,
whether a pre-prepare's digest binds its batch, whether a request's signature, a view
change or a new view holds up, and how the at-most-once table classifies a request. The
core asks only through this object (``ReplicaCore(..., rules=...)``), in normal operation
and in crash recovery alike, so one replaced rule changes every path consistently and the
simulation plants a bug by passing a subclass (``tests/sim/bugs.py``), never by reaching
into the core's private methods.
"""

from __future__ import annotations

from typing import Any

from node.consensus.clients import ClientTable
from node.consensus.log import Slot
from node.consensus.quorum import CertContext, check_view_change
from node.consensus.viewchange import NewViewPlan, check_new_view
from node.protocol.crypto import VerifyCache
from node.protocol.messages import (
    Commit,
    NewView,
    PreparedCert,
    PrePrepare,
    ViewChange,
    batch_digest,
)


class Rules:
    """The honest rules for ``f`` faulty replicas out of ``3f + 1``."""

    def __init__(self, f: int) -> None:
        self.f = f

    def quorum(self) -> int:
        """Votes for a quorum: a stable checkpoint, a view-change set, a commit
        certificate; a prepared certificate is a pre-prepare and ``quorum() - 1``
        prepares."""
        return 2 * self.f + 1

    def weak_quorum(self) -> int:
        """View changes from other replicas that make this one join a higher view."""
        return self.f + 1

    def digest_matches(self, pp: PrePrepare) -> bool:
        return batch_digest(pp.batch) == pp.digest

    def signed(self, verifier: VerifyCache, key: bytes | None, msg: Any) -> bool:
        """The message's signature verifies under ``key`` (None: an unknown sender)."""
        return key is not None and verifier.verify_message(key, msg)

    def request_ok(self, verifier: VerifyCache, key: bytes | None, request: Any) -> bool:
        """A client request may be ordered: its client is known and its signature holds."""
        return self.signed(verifier, key, request)

    def prepared_cert(self, slot: Slot, pp: PrePrepare) -> PreparedCert | None:
        """The slot's prepared certificate for ``pp`` in ``pp``'s view, if its prepares
        reach the quorum (the lowest-numbered senders, so replicas agree on the bytes)."""
        votes = slot.prepares.get((pp.view, pp.digest), {})
        needed = self.quorum() - 1
        if len(votes) < needed:
            return None
        return PreparedCert(pp, tuple(votes[s] for s in sorted(votes)[:needed]))

    def commit_cert(self, slot: Slot, view: int, digest: bytes) -> tuple[Commit, ...] | None:
        """A quorum of matching commits for ``(view, digest)``, if the slot holds one."""
        votes = slot.commits.get((view, digest))
        quorum = self.quorum()
        if votes is None or len(votes) < quorum:
            return None
        return tuple(votes[s] for s in sorted(votes)[:quorum])

    def valid_view_change(self, vc: ViewChange, certs: CertContext) -> bool:
        return check_view_change(vc, certs)

    def valid_new_view(self, nv: NewView, certs: CertContext) -> NewViewPlan | None:
        """The plan a correct new primary's ``NewView`` follows, or None if it lies."""
        return check_new_view(nv, certs, lambda vc: self.valid_view_change(vc, certs))

    def classify(self, clients: ClientTable, client: str, timestamp: int) -> str:
        """At-most-once: ``NEW``, ``RETRANSMISSION`` or ``STALE`` for this request."""
        return clients.classify(client, timestamp)
