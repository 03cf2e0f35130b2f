"""Planted bugs: test-only `Rules` subclasses that break one safety rule each.

They exist to show the simulator can fail: each one, run against the adversary that
exploits it, must produce an invariant violation within a bounded number of seeds
(`test_planted_bugs.py`). Every replica of such a run, correct or Byzantine, gets the
buggy rules (it makes no difference to what a Byzantine one sends).
"""

from __future__ import annotations

from typing import Any

import attrs

from node.consensus.clients import NEW, ClientTable
from node.consensus.quorum import CertContext
from node.consensus.rules import Rules
from node.consensus.viewchange import NewViewPlan, plan_new_view
from node.protocol.crypto import VerifyCache
from node.protocol.messages import NewView, PrePrepare, ViewChange


class QuorumTooSmall(Rules):
    """Quorums of 2f instead of 2f + 1."""

    def quorum(self) -> int:
        return 2 * self.f


class NoDigestCheck(Rules):
    """Accepts a pre-prepare whose digest does not match its batch."""

    def digest_matches(self, pp: PrePrepare) -> bool:
        return True


class UncheckedViewChange(Rules):
    """Trusts view-change messages: no checkpoint proof or prepared-certificate checks."""

    def valid_view_change(self, vc: ViewChange, certs: CertContext) -> bool:
        return True


class UncheckedNewView(Rules):
    """Trusts the new primary: enters the view with whatever pre-prepares it sent."""

    def valid_new_view(self, nv: NewView, certs: CertContext) -> NewViewPlan | None:
        if nv.view_changes:
            base = plan_new_view(nv.view, nv.view_changes)
            min_s, digest, proof = base.min_s, base.stable_digest, base.stable_proof
        else:
            min_s, digest, proof = 0, None, ()
        entries = tuple((pp.seq, pp.digest, pp.batch) for pp in nv.pre_prepares)
        max_s = max([pp.seq for pp in nv.pre_prepares], default=min_s)
        return NewViewPlan(nv.view, min_s, digest, proof, max_s, entries)


class NoRequestSignatureCheck(Rules):
    """Executes client requests without checking their signatures."""

    def request_ok(self, verifier: VerifyCache, key: bytes | None, request: Any) -> bool:
        return True


class ForgetsClients(Rules):
    """Forgets the at-most-once table: every request executes as if it were new."""

    def classify(self, clients: ClientTable, client: str, timestamp: int) -> str:
        return NEW


@attrs.frozen
class PlantedBug:
    rules: type[Rules]
    adversary: str  # the attack that makes the bug show
    max_drop_p: float = 0.15
    crash_p: float = 0.3

    def profile(self, n: int) -> dict[str, Any]:
        """`ScheduleParams.from_seed` keyword arguments: f attackers of one kind."""
        return {
            "adversaries": (self.adversary,),
            "byzantine_count": (n - 1) // 3,
            "max_drop_p": self.max_drop_p,
            "crash_p": self.crash_p,
        }


PLANTED_BUGS: dict[str, PlantedBug] = {
    "quorum_2f": PlantedBug(QuorumTooSmall, "equivocate"),
    "no_digest_check": PlantedBug(NoDigestCheck, "equivocate"),
    "unchecked_view_change": PlantedBug(UncheckedViewChange, "lying_vc", 0.3, 0.8),
    "unchecked_new_view": PlantedBug(UncheckedNewView, "lying_nv"),
    "no_request_signature_check": PlantedBug(NoRequestSignatureCheck, "forge"),
    "forgets_clients": PlantedBug(ForgetsClients, "replay"),
}
