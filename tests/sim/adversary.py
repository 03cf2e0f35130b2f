"""Byzantine replicas: wrappers around a real core's outputs.

A Byzantine replica runs an unmodified `ReplicaCore` (so it knows the protocol state), but
everything it sends passes through an `Adversary`, which may drop, rewrite, duplicate or
replace it with crafted messages signed with the replica's own real key (or forged). The
correct replicas are never changed. Kinds (see `ADVERSARIES` in `adversaries.py`; the
view-change liars are in `view_liars.py`):

- silent: receives everything, sends nothing;
- equivocate: as primary, different pre-prepares for one seq to two halves of the backups,
  plus commits that match each half's version (votes conflict too when not primary);
- conflict_votes: prepares, commits and checkpoints for different digests to each half;
- forge: random signatures, a stranger's key, impersonated senders, forged or altered
  client requests inside its pre-prepares;
- replay: captures messages and resends them later, re-proposes executed requests;
- stale_vc: valid but stale view changes (genesis checkpoint, prepared certs omitted);
- lying_vc: view changes with fabricated prepared certificates for executed seqs;
- lying_nv: as a new primary, new-views whose pre-prepares ignore the view changes;
- selective: as primary, pre-prepares to only 2f backups; no replies to clients;
- garbage: mutates random fields of what it sends (often re-signed so they verify);
- rule_breaker (`rulebreaker.py`): for each message type, validly signed messages a
  correct replica must refuse, aimed where they can do harm;
- stale_reads (`read_liars.py`): answers reads at once from unwaited state, sometimes
  with a lie, and withholds its core's own answers;
- eager_tentative (`tentative_liars.py`): tentative replies before anything prepared; as
  primary withholds its commits and some pre-prepares, so tentative batches are undone.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from node.app.kv import op_put
from node.consensus.events import Broadcast, ReplyToClient, Send
from node.protocol.crypto import Signer, sign_message
from node.protocol.messages import (
    Checkpoint,
    Commit,
    Prepare,
    PrePrepare,
    Reply,
    Request,
    batch_digest,
)

from .garbage import mutate

Endpoint = int | str
Out = tuple[Endpoint, Any]


@attrs.define
class AdversaryContext:
    me: int
    n: int
    f: int
    signer: Signer
    outsider: Signer
    rng: random.Random
    core: Callable[[], Any]  # the replica's live core (for view, last_executed, ...)
    window: int = 0  # the watermark window
    #: shared by the Byzantine replicas of one schedule, so they can collude
    conspiracy: dict[Any, Any] = attrs.Factory(dict)


class Adversary:
    """Honest pass-through; subclasses override the hooks."""

    kind = "honest"

    def __init__(self, ctx: AdversaryContext) -> None:
        self.ctx = ctx
        self.rng = ctx.rng
        self.me = ctx.me
        self.captured: deque[Any] = deque(maxlen=300)
        self.requests: deque[Request] = deque(maxlen=50)

    @property
    def others(self) -> list[int]:
        return [r for r in range(self.ctx.n) if r != self.me]

    def sign(self, msg: Any) -> Any:
        return sign_message(msg, self.ctx.signer)

    def observe(self, sender: int | str, msg: Any) -> None:
        """Everything delivered to this replica (peer messages and client requests)."""
        self.captured.append(msg)
        if isinstance(msg, Request):
            self.requests.append(msg)
        elif isinstance(msg, PrePrepare):
            self.requests.extend(msg.batch)

    def outgoing(self, actions: Sequence[Any]) -> list[Out]:
        out: list[Out] = []
        for action in actions:
            if isinstance(action, Send):
                out += self.send(action.to, action.msg)
            elif isinstance(action, Broadcast):
                for dst in self.others:
                    out += self.send(dst, action.msg)
            elif isinstance(action, ReplyToClient):
                out += self.reply(action.client, action.reply)
        return out

    def send(self, dst: int, msg: Any) -> list[Out]:
        return [(dst, msg)]

    def reply(self, client: str, reply: Reply) -> list[Out]:
        return [(client, reply)]

    def tick(self) -> list[Out]:
        """Spontaneous behaviour, called every few hundred virtual milliseconds."""
        return []

    def split(self, key: Any) -> frozenset[int]:
        """A stable, seeded 'second half' of the other replicas for one slot `key`."""
        cache: dict[Any, frozenset[int]] = self.__dict__.setdefault("_halves", {})
        if key not in cache:
            others = self.others
            self.rng.shuffle(others)
            cache[key] = frozenset(others[: self.rng.randint(1, len(others) - 1)])
        return cache[key]

    def alt_batch(self, batch: tuple[Request, ...]) -> tuple[Request, ...]:
        """A different, validly signed batch (the null request, a subset or a reorder)."""
        options: list[tuple[Request, ...]] = [()]
        if len(batch) > 1:
            options += [batch[1:], tuple(reversed(batch))]
        if self.requests:
            options.append((self.rng.choice(self.requests),))
        return self.rng.choice([b for b in options if b != batch] or [()])


class Silent(Adversary):
    kind = "silent"

    def send(self, dst: int, msg: Any) -> list[Out]:
        return []

    def reply(self, client: str, reply: Reply) -> list[Out]:
        return []


class ConflictVotes(Adversary):
    kind = "conflict_votes"

    def send(self, dst: int, msg: Any) -> list[Out]:
        if isinstance(msg, Prepare | Commit | Checkpoint) and msg.sender == self.me:
            slot = (type(msg).__name__, getattr(msg, "view", -1), msg.seq)
            if dst in self.split(slot):
                return [(dst, self.sign(attrs.evolve(msg, digest=self.rng.randbytes(32))))]
        return [(dst, msg)]


class Equivocate(ConflictVotes):
    """Colluding equivocators: the primary splits the backups between two pre-prepares
    for one slot, and every equivocating replica votes for each half's version."""

    kind = "equivocate"

    def send(self, dst: int, msg: Any) -> list[Out]:
        plans = self.ctx.conspiracy
        if isinstance(msg, PrePrepare) and msg.sender == self.me:
            key = (msg.view, msg.seq)
            if key not in plans:
                batch = self.alt_batch(msg.batch)
                if self.rng.random() < 0.5:  # same signed digest, another batch
                    alt = attrs.evolve(msg, batch=batch)
                else:
                    alt = self.sign(attrs.evolve(msg, batch=batch, digest=batch_digest(batch)))
                plans[key] = (msg, alt, self.split(key))
            real, alt, half = plans[key]
            return [(dst, alt if dst in half else real)]
        if isinstance(msg, Prepare | Commit) and msg.sender == self.me:
            plan = plans.get((msg.view, msg.seq))
            if plan is not None:
                real, alt, half = plan
                digest = alt.digest if dst in half else real.digest
                if digest != msg.digest:
                    msg = self.sign(attrs.evolve(msg, digest=digest))
                return [(dst, msg)]
        return super().send(dst, msg)


class Forge(Adversary):
    """Forgeries, one per destination or (half of the broadcasts) one for everybody."""

    kind = "forge"

    def outgoing(self, actions: Sequence[Any]) -> list[Out]:
        out: list[Out] = []
        for action in actions:
            if isinstance(action, Broadcast) and self.rng.random() < 0.5:
                forged = self.forge(action.msg)
                out += [(dst, forged) for dst in self.others]
            else:
                out += super().outgoing([action])
        return out

    def send(self, dst: int, msg: Any) -> list[Out]:
        return [(dst, self.forge(msg))]

    def forge(self, msg: Any) -> Any:
        if not hasattr(msg, "signature") or self.rng.random() < 0.3:
            return msg
        modes = 6 if isinstance(msg, PrePrepare) else 3 if hasattr(msg, "sender") else 2
        mode = self.rng.randrange(modes)
        if mode == 0:
            forged = attrs.evolve(msg, signature=self.rng.randbytes(64))
        elif mode == 1:
            forged = sign_message(msg, self.ctx.outsider)
        elif mode == 2:
            victim = self.rng.choice(self.others)
            forged = self.sign(attrs.evolve(msg, sender=victim))
        elif mode == 3:  # a request nobody signed, smuggled into a batch
            bogus = Request(
                self.rng.choice(("client/forged", "alice/evil", "mallory/x")),
                self.rng.randint(1, 10**6),
                op_put(b"forged", b"bad"),
                self.rng.randbytes(64),
            )
            batch = (*msg.batch, bogus)
            forged = self.sign(attrs.evolve(msg, batch=batch, digest=batch_digest(batch)))
        elif mode == 5:  # real requests with their authenticators garbled or stripped
            batch = tuple(
                attrs.evolve(r, auth=() if self.rng.random() < 0.5 else (bytes(16),) * len(r.auth))
                for r in msg.batch
            )
            forged = self.sign(attrs.evolve(msg, batch=batch))
        else:  # a real request with its operation altered (signature now wrong)
            if not msg.batch:
                return msg
            first = attrs.evolve(msg.batch[0], operation=op_put(b"k", b"altered"))
            batch = (first, *msg.batch[1:])
            forged = self.sign(attrs.evolve(msg, batch=batch, digest=batch_digest(batch)))
        return forged


class Replay(Adversary):
    kind = "replay"

    def send(self, dst: int, msg: Any) -> list[Out]:
        out: list[Out] = [(dst, msg)]
        if isinstance(msg, PrePrepare) and msg.sender == self.me and self.requests:
            old = self.rng.choice(self.requests)  # propose an old (maybe executed) request
            batch = (*msg.batch, old)
            out = [(dst, self.sign(attrs.evolve(msg, batch=batch, digest=batch_digest(batch))))]
        if self.captured and self.rng.random() < 0.2:
            out.append((dst, self.rng.choice(self.captured)))
        return out

    def tick(self) -> list[Out]:
        if not self.captured:
            return []
        return [
            (self.rng.choice(self.others), self.rng.choice(self.captured))
            for _ in range(self.rng.randint(1, 3))
        ]


class Selective(Adversary):
    """As primary, sends each pre-prepare to only 2f backups (one quorum with itself), so
    the others must catch up through checkpoints and state transfer; never replies."""

    kind = "selective"

    def __init__(self, ctx: AdversaryContext) -> None:
        super().__init__(ctx)
        self.audience: dict[tuple[int, int], frozenset[int]] = {}

    def send(self, dst: int, msg: Any) -> list[Out]:
        if isinstance(msg, PrePrepare) and msg.sender == self.me:
            key = (msg.view, msg.seq)
            if key not in self.audience:
                others = self.others
                self.rng.shuffle(others)
                self.audience[key] = frozenset(others[: 2 * self.ctx.f])
            return [(dst, msg)] if dst in self.audience[key] else []
        return [(dst, msg)]

    def reply(self, client: str, reply: Reply) -> list[Out]:
        return []


class Garbage(Adversary):
    kind = "garbage"

    def send(self, dst: int, msg: Any) -> list[Out]:
        if self.rng.random() < 0.4:
            return [(dst, msg)]
        bad = mutate(msg, self.rng)
        if hasattr(bad, "signature") and self.rng.random() < 0.6:
            bad = self.sign(bad)
        return [(dst, bad)]

    def reply(self, client: str, reply: Reply) -> list[Out]:
        if self.rng.random() < 0.5:
            return [(client, mutate(reply, self.rng))]
        return [(client, reply)]
