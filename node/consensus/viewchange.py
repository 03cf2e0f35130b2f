"""New-view computation and checking, as in PBFT (Castro & Liskov, OSDI '99 / TOCS 2002).

From a set ``V`` of ``2f + 1`` valid view-change messages for view ``v`` the new primary
computes:

- ``min-s``: the latest stable checkpoint reported in ``V`` (its proof comes with it);
- ``max-s``: the highest sequence number of any prepared certificate in ``V``;
- for every ``n`` in ``(min-s, max-s]``: a pre-prepare for view ``v`` re-issuing the batch
  of the prepared certificate for ``n`` with the highest view, or the null request (empty
  batch) if no message in ``V`` has one.

A backup recomputes the same plan from the view changes inside the ``NewView`` (the order
of ``V`` breaks ties deterministically) and accepts only if the re-issued pre-prepares are
exactly the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from node.consensus.quorum import CertContext, distinct_senders
from node.protocol.messages import (
    NULL_DIGEST,
    Checkpoint,
    NewView,
    PreparedCert,
    PrePrepare,
    Request,
    ViewChange,
)


@attrs.frozen
class NewViewPlan:
    view: int
    min_s: int
    #: digest and proof of the checkpoint at ``min_s`` (``None``/empty for genesis)
    stable_digest: bytes | None
    stable_proof: tuple[Checkpoint, ...]
    max_s: int
    #: (seq, digest, batch) for every seq in (min_s, max_s]
    entries: tuple[tuple[int, bytes, tuple[Request, ...]], ...]


def plan_new_view(view: int, vcs: Sequence[ViewChange]) -> NewViewPlan:
    stable_vc = max(vcs, key=lambda vc: vc.stable_seq)  # first of the highest, in V order
    min_s = stable_vc.stable_seq
    best: dict[int, PrePrepare] = {}
    for vc in vcs:
        for cert in vc.prepared:
            pp = cert.pre_prepare
            if pp.seq <= min_s:
                continue
            held = best.get(pp.seq)
            if held is None or pp.view > held.view:
                best[pp.seq] = pp
    max_s = max(best, default=min_s)
    entries = []
    for seq in range(min_s + 1, max_s + 1):
        pp = best.get(seq)
        if pp is None:
            entries.append((seq, NULL_DIGEST, ()))
        else:
            entries.append((seq, pp.digest, pp.batch))
    return NewViewPlan(
        view=view,
        min_s=min_s,
        stable_digest=stable_vc.stable_digest,
        stable_proof=stable_vc.checkpoint_proof,
        max_s=max_s,
        entries=tuple(entries),
    )


def check_new_view(
    nv: NewView, ctx: CertContext, valid_view_change: Callable[[ViewChange], bool]
) -> NewViewPlan | None:
    """The plan if ``nv`` is a correct new-view message; ``None`` otherwise.

    Checks: sent by the view's primary and signed; ``quorum`` view changes for this view
    from distinct replicas, each valid; re-issued pre-prepares exactly the recomputed plan,
    each for this view, from this primary, signed, with a digest matching its batch.
    """
    if nv.sender != ctx.primary(nv.view) or nv.sender >= ctx.n:
        return None
    vcs = nv.view_changes
    if not ctx.quorum <= len(vcs) <= ctx.n or not distinct_senders(vcs):
        return None
    if any(vc.new_view != nv.view for vc in vcs):
        return None
    plan = plan_new_view(nv.view, vcs)
    if len(nv.pre_prepares) != len(plan.entries):
        return None
    for pp, (seq, digest, _batch) in zip(nv.pre_prepares, plan.entries, strict=True):
        if pp.view != nv.view or pp.seq != seq or pp.digest != digest or pp.sender != nv.sender:
            return None
    if not ctx.sig_ok(nv):
        return None
    if not all(valid_view_change(vc) for vc in vcs):
        return None
    for pp in nv.pre_prepares:
        if not ctx.digest_ok(pp) or not ctx.sig_ok(pp):
            return None
    return plan


def certificates_above(
    stable_seq: int, certs: Sequence[tuple[int, PreparedCert]]
) -> tuple[PreparedCert, ...]:
    """The prepared certificates (given as ``(seq, cert)``) above the stable checkpoint,
    in ascending sequence order: the ``P`` component of a view-change message."""
    return tuple(cert for seq, cert in sorted(certs, key=lambda c: c[0]) if seq > stable_seq)
