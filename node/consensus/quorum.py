"""Certificate checks: checkpoint proofs, prepared certificates, view-change messages.

Pure functions over a ``CertContext`` that carries the quorum size and the signature and
digest predicates. The core builds the context from its ``Rules`` (``rules.py``), so a
test that replaces a rule changes every check consistently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from node.protocol.messages import Checkpoint, PreparedCert, PrePrepare, ViewChange


@attrs.frozen
class CertContext:
    n: int
    #: votes that make a quorum (2f + 1)
    quorum: int
    checkpoint_interval: int
    watermark_window: int
    #: True iff the message's sender is a replica and its signature verifies
    sig_ok: Callable[[Any], bool]
    #: True iff a pre-prepare's digest is the digest of its batch
    digest_ok: Callable[[PrePrepare], bool]

    def primary(self, view: int) -> int:
        return view % self.n


def distinct_senders(msgs: Iterable[Any]) -> bool:
    senders = [m.sender for m in msgs]
    return len(senders) == len(set(senders))


def check_checkpoint_proof(
    proof: tuple[Checkpoint, ...], seq: int, ctx: CertContext
) -> bytes | None:
    """The certified digest if ``proof`` holds ``quorum`` valid, distinct, matching
    checkpoints for ``seq``; ``None`` otherwise."""
    if seq == 0 or not ctx.quorum <= len(proof) <= ctx.n or not distinct_senders(proof):
        return None
    digest = proof[0].digest
    for cp in proof:
        if cp.seq != seq or cp.digest != digest or cp.sender >= ctx.n or not ctx.sig_ok(cp):
            return None
    return digest


def check_prepared_cert(cert: PreparedCert, ctx: CertContext) -> bool:
    """A signed pre-prepare from its view's primary, whose digest matches its batch, plus
    ``quorum - 1`` valid prepares from distinct backups matching view, seq and digest."""
    pp = cert.pre_prepare
    primary = ctx.primary(pp.view)
    if pp.sender != primary:
        return False
    prepares = cert.prepares
    if not ctx.quorum - 1 <= len(prepares) <= ctx.n - 1 or not distinct_senders(prepares):
        return False
    for p in prepares:
        if (
            p.view != pp.view
            or p.seq != pp.seq
            or p.digest != pp.digest
            or p.sender == primary
            or p.sender >= ctx.n
        ):
            return False
    if not ctx.digest_ok(pp) or not ctx.sig_ok(pp):
        return False
    return all(ctx.sig_ok(p) for p in prepares)


def check_view_change(vc: ViewChange, ctx: CertContext) -> bool:
    """Structure and every signature of a view-change message.

    The stable checkpoint must be a multiple of the interval, with an empty proof for the
    genesis checkpoint 0 and a valid ``quorum`` proof otherwise. Prepared certificates must
    be for strictly increasing sequence numbers inside ``(stable, stable + window]`` and
    for views below the new view.
    """
    if vc.sender >= ctx.n or vc.stable_seq % ctx.checkpoint_interval:
        return False
    if vc.stable_seq == 0:
        if vc.checkpoint_proof:
            return False
    elif check_checkpoint_proof(vc.checkpoint_proof, vc.stable_seq, ctx) is None:
        return False
    previous = vc.stable_seq
    high = vc.stable_seq + ctx.watermark_window
    for cert in vc.prepared:
        pp = cert.pre_prepare
        if not previous < pp.seq <= high or pp.view >= vc.new_view:
            return False
        previous = pp.seq
    if not ctx.sig_ok(vc):
        return False
    return all(check_prepared_cert(cert, ctx) for cert in vc.prepared)
