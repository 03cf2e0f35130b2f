"""The default schedules really exercise what they claim to: every adversary kind runs,
the correct cores reject its messages for the expected reasons, and view changes,
crash recovery and state transfer all happen, and reads are answered both ways (read-only,
and ordered after a read-only request was not decided), writes are decided on tentative
replies and tentative batches are undone, and commits count on their tags (on their
signatures when a tag is wrong)."""

from __future__ import annotations

from collections import Counter

from node.protocol.messages import ReadRequest

from .harness import Simulation
from .params import ALL_ADVERSARIES, ScheduleParams


def test_default_schedules_exercise_every_mechanism() -> None:
    kinds: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for n, seeds in ((4, range(150)), (7, range(60))):
        for seed in seeds:
            params = ScheduleParams.from_seed(seed, n)
            sim = Simulation(params)
            result = sim.run()
            assert result.ok, result.report()
            done = [o for c in sim.clients for o in c.history if o.accepted_at is not None]
            totals.update(
                read_only=sum(type(o.request) is ReadRequest for o in done),
                read_fallbacks=sum(o.fell_back for o in done),
                tentative_accepts=sum(o.tentative_only for o in done),
                rollbacks=sim.rollbacks,
                commits_on_tag=sum(c.commit_auth_counts["mac"] for c in sim.cores if c),
                commits_on_signature=sum(c.commit_auth_counts["signature"] for c in sim.cores if c),
            )
            kinds.update(params.byzantine.values())
            reasons.update(result.rejected)
            totals.update(
                view_changes=result.view_changes,
                state_transfers=result.state_transfers,
                restarts=result.restarts,
                partitions=len(params.partitions),
                completed=result.completed,
            )
    assert set(kinds) == set(ALL_ADVERSARIES)
    expected = {"bad_signature", "sender_mismatch", "equivocation", "digest_mismatch"}
    expected |= {"bad_certificate", "wrong_view", "out_of_window"}
    assert expected <= set(reasons), reasons
    for what in ("view_changes", "state_transfers", "restarts", "partitions"):
        assert totals[what] >= 10, totals
    # reads answered without ordering, and reads that had to be ordered after all
    assert totals["read_only"] >= 100 and totals["read_fallbacks"] >= 10, totals
    # writes decided on tentative replies, and tentative batches undone
    assert totals["tentative_accepts"] >= 100 and totals["rollbacks"] >= 10, totals
    # commits counted on their tags, and on their signatures when a tag was wrong
    assert totals["commits_on_tag"] >= 10 * totals["commits_on_signature"] > 0, totals
