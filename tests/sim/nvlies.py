"""NewViews a correct replica must refuse, built by a Byzantine new primary (rulebreaker.py)
from the real view changes it gathered, each internally consistent except for one rule:

- `too_few`: only 2f of the view changes (the re-issued pre-prepares computed from those);
- `other_view`: its own view change re-signed for another view;
- `forged`: another replica's view change with its prepared certificates dropped, under
  that replica's old signature (which no longer verifies);
- `wrong_batch`: the real view changes, one re-issued pre-prepare with another batch
  (signed, hashing to its digest, but not the batch the certificates name).

And, from a replica that is not the new view's primary, `new_view_from` the 2f + 1 real
view changes it overheard: a NewView correct in all but its sender.

The re-issued pre-prepares are computed with the core's own plan over the (altered) view
changes, so each lie breaks exactly the rule it is named for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from node.consensus.viewchange import plan_new_view
from node.protocol.messages import NewView, PrePrepare, Request, ViewChange, batch_digest


def new_view_from(
    view: int, vcs: tuple[ViewChange, ...], me: int, sign: Callable[[Any], Any]
) -> NewView:
    plan = plan_new_view(view, vcs)
    pps = tuple(
        sign(PrePrepare(view, seq, digest, batch, me)) for seq, digest, batch in plan.entries
    )
    return sign(NewView(view, vcs, pps, me))


def lying_new_views(
    real: NewView,
    sign: Callable[[Any], Any],
    alt_batch: Callable[[tuple[Request, ...]], tuple[Request, ...]],
    f: int,
) -> list[NewView]:
    """One NewView per lie that applies to ``real`` (this replica's own NewView)."""
    view, me, vcs = real.view, real.sender, real.view_changes
    lies = []
    # drop the view change carrying the most certificates: the one whose loss can hurt
    keep = sorted(vcs, key=lambda vc: len(vc.prepared))[: 2 * f]
    lies.append(new_view_from(view, tuple(keep), me, sign))
    own = [vc for vc in vcs if vc.sender == me]
    if own:
        moved = sign(attrs.evolve(own[0], new_view=view + 1))
        lies.append(
            new_view_from(view, tuple(moved if vc is own[0] else vc for vc in vcs), me, sign)
        )
    others = [vc for vc in vcs if vc.sender != me and vc.prepared]
    if others:
        forged = attrs.evolve(others[0], prepared=())  # its signature no longer verifies
        lies.append(
            new_view_from(view, tuple(forged if vc is others[0] else vc for vc in vcs), me, sign)
        )
    if real.pre_prepares:
        pps = list(real.pre_prepares)
        batch = alt_batch(pps[-1].batch)
        pps[-1] = sign(attrs.evolve(pps[-1], batch=batch, digest=batch_digest(batch)))
        lies.append(sign(attrs.evolve(real, pre_prepares=tuple(pps))))
    return lies
