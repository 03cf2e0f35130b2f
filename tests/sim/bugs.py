"""Planted bugs: test-only `ReplicaCore` subclasses that break one safety check each.

They exist to show the simulator can fail: each one, run against the adversary that
exploits it, must produce an invariant violation within a bounded number of seeds
(`test_planted_bugs.py`). The correct replicas of such a run all use the buggy class; the
Byzantine ones run it too (it makes no difference to what they send).
"""

from __future__ import annotations

from typing import Any

import attrs

from node.consensus.core import ReplicaCore
from node.consensus.viewchange import NewViewPlan, plan_new_view
from node.protocol.messages import NewView, PrePrepare, Request, ViewChange


class QuorumTooSmall(ReplicaCore):
    """Quorums of 2f instead of 2f + 1."""

    def quorum_size(self) -> int:
        return 2 * self.cfg.f


class NoDigestCheck(ReplicaCore):
    """Accepts a pre-prepare whose digest does not match its batch."""

    def _digest_matches(self, pp: PrePrepare) -> bool:
        return True


class UncheckedViewChange(ReplicaCore):
    """Trusts view-change messages: no checkpoint proof or prepared-certificate checks."""

    def _valid_view_change(self, vc: ViewChange) -> bool:
        return True


class UncheckedNewView(ReplicaCore):
    """Trusts the new primary: enters the view with whatever pre-prepares it sent."""

    def _valid_new_view(self, nv: NewView) -> NewViewPlan | None:
        if nv.view_changes:
            base = plan_new_view(nv.view, nv.view_changes)
            min_s, digest, proof = base.min_s, base.stable_digest, base.stable_proof
        else:
            min_s, digest, proof = 0, None, ()
        entries = tuple((pp.seq, pp.digest, pp.batch) for pp in nv.pre_prepares)
        max_s = max([pp.seq for pp in nv.pre_prepares], default=min_s)
        return NewViewPlan(nv.view, min_s, digest, proof, max_s, entries)


class NoRequestSignatureCheck(ReplicaCore):
    """Executes client requests without checking their signatures."""

    def _request_ok(self, request: Request) -> bool:
        return True


class ForgetsClients(ReplicaCore):
    """Loses the at-most-once table entry of every session it executes a request for."""

    def _execute(self, pp: PrePrepare) -> None:
        for request in pp.batch:
            self._clients._last.pop(request.client, None)
        super()._execute(pp)


@attrs.frozen
class PlantedBug:
    core_class: type[ReplicaCore]
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
