"""When a client has its answer: the reply quorum rule.

A replica's reply is *committed* (its batch had a commit certificate when it ran) or
*tentative* (it ran once the batch prepared, PBFT's tentative execution). An ordered
request is decided by ``f + 1`` matching committed replies (one of them is from a correct
replica, and committed batches never change) or by ``2f + 1`` matching replies of either
kind (``f + 1`` correct replicas prepared the batch, so it keeps its place in every later
view and commits with that result). A read-only request needs ``2f + 1`` matching replies
whatever they say of themselves (``node.consensus.readonly``).

Shared by the client pool and the simulation's clients, so the rule the simulation checks
is the one users run.
"""

from __future__ import annotations

from collections.abc import Mapping


def decided(
    replies: Mapping[int, bytes],
    committed: Mapping[int, bytes],
    result: bytes,
    f: int,
    read_only: bool,
) -> bool:
    """Whether ``result`` is decided, given each replica's latest reply (``replies``) and
    its latest committed one (``committed``)."""
    if sum(1 for r in replies.values() if r == result) >= 2 * f + 1:
        return True
    if read_only:
        return False
    return sum(1 for r in committed.values() if r == result) >= f + 1


def most_common(replies: Mapping[int, bytes]) -> int:
    """How many replicas stand behind the most common result among ``replies``."""
    counts: dict[bytes, int] = {}
    for result in replies.values():
        counts[result] = counts.get(result, 0) + 1
    return max(counts.values(), default=0)
