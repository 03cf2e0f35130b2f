"""Every mutant of the simulation's mutation run still applies to the code as it is: its
text occurs exactly once in its file (else `python -m tests.sim.mutate` stops at once).
Kept outside tests/sim, which is what the mutation run executes on each mutated tree."""

from __future__ import annotations

from pathlib import Path

from tests.sim.mutants import MUTANTS

ROOT = Path(__file__).resolve().parents[2]


def test_every_mutant_applies_to_the_code_as_it_is() -> None:
    stale = [m.name for m in MUTANTS if (ROOT / m.path).read_text().count(m.old) != 1]
    assert stale == []
