"""A rule-breaking Byzantine replica: validly signed messages a correct replica must refuse.

`RuleBreaker` holds a real key and runs a real core (adversary.py), and breaks the rules
of each message type where it can do harm:

- pre-prepares from the wrong role: as a backup, at every tick, pre-prepares of its own
  for the next sequence numbers of the current view, sent before the primary's; as the
  primary, a second, different pre-prepare for the same (view, seq) right after the first;
- state responses that disagree with their certificates, to every replica that asks and,
  unasked, to random ones: entries whose batch was swapped, with commits for another
  digest, too few commits, the same signer repeated, signers that are not members (ids
  above n), bad signatures, or a batch that does not hash to its digest; snapshots that
  do not hash to the certified digest, or certified by its own checkpoint repeated, or by
  a proof that mixes digests; a bare checkpoint proof for a digest nobody signed;
- unasked, to a replica whose status shows it behind (just restarted, or back from a
  partition), lying state responses built from the real ones it would send, before the
  replica's own fetch reaches a correct peer;
- checkpoints for a digest that is not its state, beside the real one;
- as primary it falls silent after a few ticks, so a view change follows, and its view
  changes carry prepared certificates of its own views with another batch under the
  real prepares;
- unasked, "certificates" for the next sequence number nobody executed yet;
- alone, now and then, a view change for a later view while nobody else wants one (a
  correct replica joins only when f + 1 others ask);
- as the primary of a new view, NewViews that break one rule each (nvlies.py) before its
  real one, which it holds back until its next tick; and when it is not the new primary,
  a NewView of its own from the 2f + 1 view changes of the others it overheard.
"""

from __future__ import annotations

from typing import Any

import attrs

from node.app.kv import KVStore, op_put
from node.consensus.clients import ClientTable, encode_snapshot, snapshot_digest
from node.consensus.events import MessageReceived, Send
from node.protocol.messages import (
    Checkpoint,
    Commit,
    CommittedEntry,
    NewView,
    PreparedCert,
    PrePrepare,
    StateRequest,
    StateResponse,
    Status,
    ViewChange,
    batch_digest,
)

from .adversary import Adversary, Out
from .nvlies import lying_new_views, new_view_from

ENTRY_LIES = ("swap_digest", "few", "dup_signer", "non_member", "bad_sig", "unhashed")
SNAPSHOT_LIES = ("wrong_snapshot", "dup_proof", "mixed_proof")


class RuleBreaker(Adversary):
    kind = "rule_breaker"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        #: as primary, it stops proposing after this many ticks (forcing a view change)
        self.mute_after = self.rng.randint(4, 16)
        self.ticks = 0
        #: its real NewViews, sent at the next tick, after the lies
        self.held_back: list[Out] = []
        self.nv_lies: dict[int, list[NewView]] = {}
        #: lies for a lagging peer, sent with the actions of the round that showed it
        self.to_laggards: list[Out] = []
        self.lied_to: set[tuple[int, int]] = set()
        #: view -> sender -> the view change it overheard (for a usurper's NewView)
        self.overheard: dict[int, dict[int, ViewChange]] = {}

    def _usurp(self, vc: ViewChange) -> None:
        view = vc.new_view
        if view % self.ctx.n == self.me or vc.sender == self.me or view < self.ctx.core().view:
            return
        # another liar's view change may name any seq: a plan from it would never end
        if any(c.pre_prepare.seq > vc.stable_seq + self.ctx.window for c in vc.prepared):
            return
        heard = self.overheard.setdefault(view, {})
        heard[vc.sender] = vc
        if len(heard) == 2 * self.ctx.f + 1:
            nv = new_view_from(view, tuple(heard.values()), self.me, self.sign)
            self.to_laggards += [(dst, nv) for dst in self.others]
        if len(self.overheard) > 8:
            del self.overheard[min(self.overheard)]

    def observe(self, sender: Any, msg: Any) -> None:
        super().observe(sender, msg)
        if type(msg) is ViewChange:
            self._usurp(msg)
        if type(msg) is not Status or not isinstance(sender, int):
            return
        core = self.ctx.core()
        key = (sender, msg.last_executed)
        if msg.last_executed >= core.last_executed or key in self.lied_to:
            return
        self.lied_to.add(key)
        real = core.handle(MessageReceived(sender, StateRequest(msg.last_executed, sender)))
        for action in real:
            if type(action) is Send and type(action.msg) is StateResponse:
                self.to_laggards.append((sender, self.lying_response(action.msg)))

    def outgoing(self, actions: Any) -> list[Out]:
        out = super().outgoing(actions)
        if self.to_laggards:
            out, self.to_laggards = self.to_laggards + out, []
        return out

    def send(self, dst: int, msg: Any) -> list[Out]:
        kind = type(msg)
        if kind is PrePrepare and msg.sender == self.me and self.ticks >= self.mute_after:
            return []
        if kind is ViewChange and msg.sender == self.me:
            return [(dst, self._lying_view_change(msg))]
        if kind is NewView and msg.sender == self.me:
            if msg.view not in self.nv_lies:
                self.nv_lies = {
                    msg.view: lying_new_views(msg, self.sign, self.alt_batch, self.ctx.f)
                }
            self.held_back.append((dst, msg))
            return [(dst, lie) for lie in self.nv_lies[msg.view]]
        if kind is PrePrepare and msg.sender == self.me and self.rng.random() < 0.6:
            batch = self.alt_batch(msg.batch)
            second = self.sign(attrs.evolve(msg, batch=batch, digest=batch_digest(batch)))
            return [(dst, msg), (dst, second)]
        if kind is StateResponse and self.rng.random() < 0.7:
            return [(dst, self.lying_response(msg))]
        if kind is Checkpoint and msg.sender == self.me and self.rng.random() < 0.3:
            return [(dst, self.sign(attrs.evolve(msg, digest=self.rng.randbytes(32))))]
        return [(dst, msg)]

    def tick(self) -> list[Out]:
        self.ticks += 1
        core = self.ctx.core()
        out, self.held_back = self.held_back, []
        if not core.in_view_change and core.primary != self.me and self.rng.random() < 0.5:
            base = max(core.last_executed, core.stable_checkpoint)
            for seq in range(base + 1, base + 1 + self.rng.randint(1, 2)):
                batch = self.alt_batch(())
                pp = self.sign(PrePrepare(core.view, seq, batch_digest(batch), batch, self.me))
                out += [(dst, pp) for dst in self.others]
        if self.rng.random() < 0.3:
            victim = self.rng.choice(self.others)
            out.append((victim, self._future_entry(core)))
        if not core.in_view_change and self.rng.random() < 0.15:
            out += [(dst, self._premature_view_change(core)) for dst in self.others]
        return out

    def _premature_view_change(self, core: Any) -> ViewChange:
        """A valid view change (real checkpoint proof) for a view nobody else asked for."""
        ckpt = core._ckpt
        view = core.view + self.rng.randint(1, 2)
        return self.sign(ViewChange(view, ckpt.stable_seq, ckpt.stable_proof, (), self.me))

    def _future_entry(self, core: Any) -> StateResponse:
        """Unasked: a "certificate" for the next sequence number nobody executed yet."""
        seq = core.last_executed + 1
        view = core.view
        batch = self.alt_batch(())
        pp = PrePrepare(view, seq, batch_digest(batch), batch, view % self.ctx.n)
        pp = self.sign(pp) if pp.sender == self.me else attrs.evolve(pp, signature=bytes(64))
        real = [CommittedEntry(pp, (self.sign(Commit(view, seq, pp.digest, self.me)),))]
        entry = self._lying_entry(real[0], self.rng.choice(ENTRY_LIES))
        return StateResponse(core.last_executed, b"", (), self.me, (entry,))

    # --- lies ---------------------------------------------------------------------------

    def lying_response(self, resp: StateResponse) -> StateResponse:
        if resp.snapshot and self.rng.random() < 0.6:
            return self._lying_snapshot(resp)
        if not resp.entries:
            return self._lying_proof(resp)
        entries = list(resp.entries)
        index = self.rng.randrange(len(entries))
        entries[index] = self._lying_entry(entries[index], self.rng.choice(ENTRY_LIES))
        return attrs.evolve(resp, entries=tuple(entries[: index + 1]))

    def _lying_entry(self, entry: CommittedEntry, how: str) -> CommittedEntry:
        pp, commits = entry.pre_prepare, entry.commits
        batch = self.alt_batch(pp.batch)
        digest = batch_digest(batch)
        fake_pp = attrs.evolve(pp, batch=batch, digest=digest)  # the primary's signature stays
        view, quorum = commits[0].view if commits else pp.view, 2 * self.ctx.f + 1
        mine = self.sign(Commit(view, pp.seq, digest, self.me))
        if how == "swap_digest":  # the real commits, for the real digest
            return CommittedEntry(fake_pp, commits)
        if how == "unhashed":  # the real digest and commits, another batch
            return CommittedEntry(attrs.evolve(pp, batch=batch), commits)
        if how == "few":
            return CommittedEntry(fake_pp, (mine,))
        if how == "dup_signer":
            return CommittedEntry(fake_pp, (mine,) * quorum)
        if how == "non_member":
            n = self.ctx.n
            fakes = tuple(self.sign(Commit(view, pp.seq, digest, n + i)) for i in range(quorum - 1))
            return CommittedEntry(fake_pp, (mine, *fakes))
        others = tuple(  # bad_sig: real members, signatures that do not verify
            Commit(view, pp.seq, digest, r, self.rng.randbytes(64))
            for r in self.others[: quorum - 1]
        )
        return CommittedEntry(fake_pp, (mine, *others))

    def _lying_view_change(self, vc: ViewChange) -> ViewChange:
        """Prepared certificates of views it led get another batch under the same
        prepares (its own signature on the new pre-prepare is valid)."""
        certs = []
        for cert in vc.prepared:
            pp = cert.pre_prepare
            if pp.sender == self.me:
                batch = self.alt_batch(pp.batch)
                pp = self.sign(attrs.evolve(pp, batch=batch, digest=batch_digest(batch)))
                cert = PreparedCert(pp, cert.prepares)
            certs.append(cert)
        return self.sign(attrs.evolve(vc, prepared=tuple(certs)))

    def _bogus_snapshot(self) -> bytes:
        store = KVStore()
        store.apply(op_put(b"planted", self.rng.randbytes(8)))
        return encode_snapshot(store.snapshot(), ClientTable())

    def _lying_snapshot(self, resp: StateResponse) -> StateResponse:
        bogus = self._bogus_snapshot()
        how = self.rng.choice(SNAPSHOT_LIES)
        if how == "wrong_snapshot":
            return attrs.evolve(resp, snapshot=bogus, entries=())
        own = self.sign(Checkpoint(resp.seq, snapshot_digest(bogus), self.me))
        quorum = 2 * self.ctx.f + 1
        if how == "dup_proof":
            proof = (own,) * quorum
        else:
            proof = (own, *[cp for cp in resp.proof if cp.sender != self.me][: quorum - 1])
        return attrs.evolve(resp, snapshot=bogus, proof=proof, entries=())

    def _lying_proof(self, resp: StateResponse) -> StateResponse:
        seq = resp.seq + self.rng.choice((1, 2, 3))
        own = self.sign(Checkpoint(seq, self.rng.randbytes(32), self.me))
        return attrs.evolve(resp, snapshot=b"", proof=(own,) * (2 * self.ctx.f + 1), entries=())
