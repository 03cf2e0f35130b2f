"""The spec checks of correct replicas' behaviour, fed by the harness as the run goes.

`SpecChecks` owns the `VoteMonitor` (spec.py) and the `NewViewJudge` (spec_views.py) and
records violations in the `Invariants` ledger, all as `unjustified`: a correct replica
sent a vote, a pre-prepare, a view change or a NewView that what it holds does not allow,
entered a view without a NewView PBFT allows, or executed a batch without 2f + 1 commits
of one view among the messages it was actually given. Only correct replicas are checked.
"""

from __future__ import annotations

from typing import Any

from node.consensus.events import VIEW_CHANGE_TIMER, Executed, TimerFired
from node.protocol.messages import NewView, ViewChange

from .invariants import Invariants
from .spec import VoteMonitor
from .spec_views import NewViewJudge


class SpecChecks:
    def __init__(self, n: int, f: int, replica_keys: dict[int, bytes], ledger: Invariants):
        self.ledger = ledger
        self.monitor = VoteMonitor(n, f, replica_keys)
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
