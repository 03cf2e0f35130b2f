"""The demo's chaos schedule and the measurements taken around each step.

`schedule(duration)` places four steps (kill a backup, revive it, kill the primary,
revive it) at fixed fractions of the run. `RecoveryTracker` is fed timestamped /status
snapshots of every replica and turns them into the figures the demo prints: per step,
seconds until the others' circuits to the victim opened, until they closed again after
the revive, until the first commit in a new view, and until a revived replica caught up.
It is pure (time is passed in), so it is tested without processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

Entry = Mapping[str, Any]

# (fraction of the run, action, target): "backup" is the highest id that is not primary.
STEPS = (
    (0.15, "kill", "backup"),
    (0.35, "revive", "backup"),
    (0.55, "kill", "primary"),
    (0.75, "revive", "primary"),
)
MIN_DURATION_S = 20.0


def schedule(duration_s: float) -> list[tuple[float, str, str]]:
    """Seconds after the start at which each chaos step runs."""
    if duration_s < MIN_DURATION_S:
        raise ValueError(f"the demo needs --duration >= {MIN_DURATION_S:g} s")
    return [(round(frac * duration_s, 2), action, target) for frac, action, target in STEPS]


@attrs.define
class Step:
    """One chaos step and what was measured after it (seconds, None = not seen)."""

    action: str
    target: str
    replica: int
    at: float
    view_before: int = 0
    executed_before: int = 0
    stable_before: int = 0
    circuit_open_s: float | None = None
    circuit_closed_s: float | None = None
    new_view_commit_s: float | None = None
    caught_up_s: float | None = None

    @property
    def label(self) -> str:
        return f"{self.action} {self.target} (replica {self.replica})"


def _live(entries: Sequence[Entry], exclude: int) -> list[Entry]:
    return [e for e in entries if e.get("reachable", True) and "view" in e and e["id"] != exclude]


def primary_of(entries: Sequence[Entry]) -> int | None:
    """The primary most live replicas agree on."""
    votes: dict[int, int] = {}
    for e in entries:
        if e.get("reachable", True) and "primary" in e:
            votes[e["primary"]] = votes.get(e["primary"], 0) + 1
    return max(votes, key=lambda p: (votes[p], -p)) if votes else None


def pick_backup(entries: Sequence[Entry], n: int) -> int:
    primary = primary_of(entries)
    return max(i for i in range(n) if i != primary)


class RecoveryTracker:
    """Turns successive /status snapshots into the demo's recovery figures."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def begin(
        self, action: str, target: str, replica: int, at: float, entries: Sequence[Entry]
    ) -> Step:
        live = _live(entries, replica)
        step = Step(
            action,
            target,
            replica,
            at,
            view_before=max((e["view"] for e in live), default=0),
            executed_before=max((e["last_executed"] for e in live), default=0),
            stable_before=max((e["stable_checkpoint"] for e in live), default=0),
        )
        self.steps.append(step)
        return step

    def observe(self, now: float, entries: Sequence[Entry]) -> None:
        for step in self.steps:
            self._observe_step(step, now, entries)

    def _observe_step(self, step: Step, now: float, entries: Sequence[Entry]) -> None:
        others = _live(entries, step.replica)
        if not others:
            return
        peer = str(step.replica)
        circuits = [e.get("peers", {}).get(peer, {}).get("circuit") for e in others]
        elapsed = round(now - step.at, 3)
        if step.action == "kill":
            if step.circuit_open_s is None and all(c == "open" for c in circuits):
                step.circuit_open_s = elapsed
            if (
                step.target == "primary"
                and step.new_view_commit_s is None
                and any(
                    e["view"] > step.view_before and e["last_executed"] > step.executed_before
                    for e in others
                )
            ):
                step.new_view_commit_s = elapsed
        else:
            if step.circuit_closed_s is None and all(c == "closed" for c in circuits):
                step.circuit_closed_s = elapsed
            me = next(
                (
                    e
                    for e in entries
                    if e["id"] == step.replica and e.get("reachable", True) and "last_executed" in e
                ),
                None,
            )
            if step.caught_up_s is None and me is not None and step.stable_before > 0:
                if me["last_executed"] >= step.stable_before:
                    step.caught_up_s = elapsed

    def failures(self) -> list[str]:
        """What did not recover (empty when every step recovered)."""
        out = []
        for s in self.steps:
            if s.action == "kill" and s.circuit_open_s is None:
                out.append(f"{s.label}: the others' circuits never opened")
            if s.action == "kill" and s.target == "primary" and s.new_view_commit_s is None:
                out.append(f"{s.label}: no commit in a new view")
            if s.action == "revive" and s.circuit_closed_s is None:
                out.append(f"{s.label}: the others' circuits never closed")
        return out


def throughput(timeline: Sequence[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Committed ops/s between t0 and t1 from (completion time, latency) samples."""
    if t1 <= t0:
        return None
    return round(sum(1 for t, _ in timeline if t0 <= t < t1) / (t1 - t0), 1)
