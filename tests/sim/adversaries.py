"""Every adversary kind by name, and `make_adversary(kind, ctx)` for the harness."""

from __future__ import annotations

from .adversary import (
    Adversary,
    AdversaryContext,
    ConflictVotes,
    Equivocate,
    Forge,
    Garbage,
    Replay,
    Selective,
    Silent,
)
from .read_liars import StaleReads
from .rulebreaker import RuleBreaker
from .tag_liars import TagOnlyCommits
from .tentative_liars import EagerTentative
from .view_liars import LyingNewView, LyingViewChange, StaleViewChange

ADVERSARIES: dict[str, type[Adversary]] = {
    cls.kind: cls
    for cls in (
        Silent,
        Equivocate,
        ConflictVotes,
        Forge,
        Replay,
        StaleViewChange,
        LyingViewChange,
        LyingNewView,
        Selective,
        Garbage,
        RuleBreaker,
        StaleReads,
        EagerTentative,
        TagOnlyCommits,
    )
}


def make_adversary(kind: str, ctx: AdversaryContext) -> Adversary:
    return ADVERSARIES[kind](ctx)
