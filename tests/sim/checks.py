"""The spec checks of correct replicas' behaviour, fed by the harness as the run goes.

`SpecChecks` owns the `VoteMonitor` (spec.py) and the `NewViewJudge` (spec_views.py) and
records violations in the `Invariants` ledger (a correct replica rejecting a correct one's
message as forged is `accused`), the rest as `unjustified`: a correct replica
sent a vote, a pre-prepare, a view change or a NewView that what it holds does not allow,
entered a view without a NewView PBFT allows, or executed a batch without 2f + 1 commits
of one view among the messages it was actually given. Only correct replicas are checked.
"""

from __future__ import annotations

from typing import Any

from node.consensus.events import VIEW_CHANGE_TIMER, Executed, Rejected, TimerFired
from node.protocol.messages import NewView, ViewChange

from .invariants import Invariants
from .keys import ClusterKeys
from .spec import VoteMonitor
from .spec_views import NewViewJudge
from .tags import TagKeys

#: reasons a correct replica gives only for a faulty sender's message (the others, such
#: as wrong_view or out_of_window, a correct sender's late or early message may earn)
ACCUSATIONS = frozenset(
    {"bad_signature", "bad_certificate", "bad_proof", "bad_snapshot", "equivocation", "wrong_role"}
)


class SpecChecks:
    def __init__(self, n: int, f: int, keys: ClusterKeys, ledger: Invariants):
        self.ledger = ledger
        seeds = {r: pair.seed for r, pair in enumerate(keys.replicas)}
        self.monitor = VoteMonitor(n, f, keys.replica_public, TagKeys(seeds))
        self.judge = NewViewJudge(n, f, self.monitor.signed)

    def delivered(self, r: int, msg: Any) -> None:
        if r in self.ledger.correct:
            self.monitor.hold(r, msg)
            if type(msg) is NewView:
                self.judge.hold(r, msg)

    def sent(self, r: int, msg: Any, cause: Any) -> None:
        """What a correct replica sends must follow from what it holds; `cause` is the
        input it was handling (a view change may rest on its own view-change timer)."""
        if r not in self.ledger.correct:
            return
        problem = self.monitor.sent(r, msg)
        if type(msg) is ViewChange:
            timed_out = cause == "restart" or (
                type(cause) is TimerFired and cause.timer == VIEW_CHANGE_TIMER
            )
            problem = self.monitor.view_change_problem(r, msg, timed_out)
        if problem is None and type(msg) is NewView:
            problem = self.judge.problem(msg)
            self.judge.hold(r, msg)
        if problem is not None:
            self.ledger.fail("unjustified", f"replica {r} sent {type(msg).__name__}: {problem}")
        self.monitor.hold(r, msg)

    def entered(self, r: int, view: int) -> None:
        """A correct replica enters a view only by a NewView the spec accepts."""
        if r in self.ledger.correct and not self.judge.may_enter(r, view):
            self.ledger.fail(
                "unjustified",
                f"replica {r} entered view {view} holding no NewView for it that PBFT allows",
            )

    def rejected(self, r: int, rejected: Rejected) -> None:
        """A correct replica never finds a correct replica's message forged or lying: a
        certificate it serves, a vote, a signature (what ``ACCUSATIONS`` names)."""
        sender = rejected.sender
        correct = self.ledger.correct
        if r in correct and sender in correct and rejected.reason in ACCUSATIONS:
            self.ledger.fail(
                "accused", f"replica {r} rejected correct replica {sender}: {rejected.reason}"
            )

    def executed(self, r: int, executed: Executed) -> None:
        """A correct replica executes a batch only with 2f + 1 commits of one view for it
        among the messages it was actually given (or sent)."""
        if r in self.ledger.correct and not self.monitor.justified(
            r, executed.seq, executed.digest
        ):
            self.ledger.fail(
                "unjustified",
                f"replica {r} executed seq {executed.seq} ({executed.digest[:4].hex()}) "
                "without 2f+1 valid commits of one view among the messages it received",
            )
