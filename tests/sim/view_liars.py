"""Byzantine replicas that lie in view changes: stale view changes (genesis checkpoint,
prepared certificates left out), view changes with fabricated prepared certificates for
executed seqs, and, as primary of a new view, new-views whose pre-prepares ignore the
view changes they carry.
"""

from __future__ import annotations

from typing import Any

import attrs

from node.protocol.messages import (
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    ViewChange,
    batch_digest,
)

from .adversary import Adversary, AdversaryContext, Out


class StaleViewChange(Adversary):
    kind = "stale_vc"

    def send(self, dst: int, msg: Any) -> list[Out]:
        if isinstance(msg, ViewChange) and msg.sender == self.me:
            keep = tuple(c for c in msg.prepared if self.rng.random() < 0.3)
            if self.rng.random() < 0.5:
                stale = attrs.evolve(msg, stable_seq=0, checkpoint_proof=(), prepared=())
            else:
                stale = attrs.evolve(msg, prepared=keep)
            return [(dst, self.sign(stale))]
        return [(dst, msg)]


class LyingViewChange(Adversary):
    """Claims prepared certificates (with forged votes) for seqs that already executed."""

    kind = "lying_vc"

    def fake_cert(self, view: int, seq: int) -> PreparedCert:
        ctx = self.ctx
        primary = view % ctx.n
        batch = self.alt_batch(())
        pp = PrePrepare(view, seq, batch_digest(batch), batch, primary, self.rng.randbytes(64))
        if primary == self.me:
            pp = self.sign(pp)
        backups = [r for r in range(ctx.n) if r != primary]
        prepares = tuple(
            Prepare(view, seq, pp.digest, r, self.rng.randbytes(64))
            for r in sorted(self.rng.sample(backups, 2 * ctx.f))
        )
        return PreparedCert(pp, prepares)

    def send(self, dst: int, msg: Any) -> list[Out]:
        if isinstance(msg, ViewChange) and msg.sender == self.me and msg.new_view > 0:
            top = msg.stable_seq + self.ctx.window
            certs = tuple(
                self.fake_cert(msg.new_view - 1, seq) for seq in range(msg.stable_seq + 1, top + 1)
            )
            return [(dst, self.sign(attrs.evolve(msg, prepared=certs)))]
        return [(dst, msg)]


class LyingNewView(Adversary):
    """As primary of a new view, re-issues pre-prepares of its own choosing."""

    kind = "lying_nv"

    def __init__(self, ctx: AdversaryContext) -> None:
        super().__init__(ctx)
        self.lies: dict[int, NewView] = {}

    def forge_nv(self, view: int, vcs: tuple[ViewChange, ...]) -> NewView:
        if view not in self.lies:
            core = self.ctx.core()
            low = max([vc.stable_seq for vc in vcs], default=core.stable_checkpoint)
            top = max(core.last_executed + 1, low + 1)
            pps = []
            for seq in range(low + 1, top + 1):
                batch = self.alt_batch(())
                pps.append(self.sign(PrePrepare(view, seq, batch_digest(batch), batch, self.me)))
            self.lies[view] = self.sign(NewView(view, vcs, tuple(pps), self.me))
        return self.lies[view]

    def send(self, dst: int, msg: Any) -> list[Out]:
        if isinstance(msg, NewView) and msg.sender == self.me:
            return [(dst, self.forge_nv(msg.view, msg.view_changes))]
        return [(dst, msg)]

    def tick(self) -> list[Out]:
        if self.rng.random() < 0.7:
            return []
        core = self.ctx.core()
        view = core.view + 1
        while view % self.ctx.n != self.me:
            view += 1
        vcs = tuple(
            {
                m.sender: m
                for m in self.captured
                if isinstance(m, ViewChange) and m.new_view == view
            }.values()
        )
        nv = self.forge_nv(view, vcs)
        return [(dst, nv) for dst in self.others]
