"""The outcome of one simulated schedule, and its failure report."""

from __future__ import annotations

from collections import Counter

import attrs

from .invariants import Violation
from .params import ScheduleParams
from .trace import Trace


@attrs.define
class SimResult:
    params: ScheduleParams
    violations: list[Violation]
    trace: Trace
    steps: int
    virtual_time: float
    executed_seqs: int
    view_changes: int
    state_transfers: int
    restarts: int
    completed: int
    rejected: Counter[str]
    replay_hint: str

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> str:
        lines = [f"schedule FAILED: {self.params.summary()}"]
        lines += [f"  violation: {v}" for v in self.violations]
        lines.append(f"  steps={self.steps} time={self.virtual_time:.3f}")
        lines.append(f"  replay: {self.replay_hint}")
        lines.append("--- last events ---")
        lines.append(self.trace.render())
        return "\n".join(lines)
