"""A Byzantine replica that attacks tentative execution (`node/consensus/tentative.py`).

For every request it finds in a pre-prepare it answers the client at once with a reply
marked tentative, before anything prepared: `ok` for a write, its own state's answer for a
get (the reply a replica that executes on the pre-prepare would give), and withholds its
core's genuine reply to that request. As primary it also keeps its commits to itself and
leaves one backup without the pre-prepare of some slots, so batches prepare at only some
correct replicas and wait for a view change, which undoes their tentative execution.
Clients must still accept a result only on `2f + 1` matching replies of either kind (or
`f + 1` committed ones), and a batch undone must never be one a client accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.app.kv import decode_op, encode_result
from node.protocol.messages import Commit, PrePrepare, Reply, Request

from .adversary import Adversary, AdversaryContext, Out

MAX_REMEMBERED = 1000


class EagerTentative(Adversary):
    kind = "eager_tentative"

    def __init__(self, ctx: AdversaryContext) -> None:
        super().__init__(ctx)
        self._seen: list[Request] = []
        self._answered: set[tuple[str, int]] = set()

    def observe(self, sender: int | str, msg: Any) -> None:
        super().observe(sender, msg)
        if isinstance(msg, PrePrepare):
            self._seen.extend(msg.batch)

    def outgoing(self, actions: Sequence[Any]) -> list[Out]:
        out = [self._early_reply(req) for req in self._seen]
        self._seen.clear()
        return [o for o in out if o is not None] + super().outgoing(actions)

    def _early_reply(self, req: Request) -> Out | None:
        if req.key in self._answered:
            return None
        core = self.ctx.core()
        try:
            name = decode_op(req.operation)[0]
        except ValueError:
            return None
        result = core._exec.app.query(req.operation) if name == "get" else None
        if result is None:
            result = encode_result("ok")
        if len(self._answered) >= MAX_REMEMBERED:
            self._answered.clear()
        self._answered.add(req.key)
        reply = Reply(core.view, req.timestamp, req.client, self.me, result, tentative=True)
        return (req.client, reply)

    def send(self, dst: int, msg: Any) -> list[Out]:
        if type(msg) is Commit and msg.sender == self.me:
            return []  # the others must commit without it
        if type(msg) is PrePrepare and msg.sender == self.me:
            victims = self.split(("pp", msg.view, msg.seq))
            if len(victims) == 1 and dst in victims:
                return []  # this backup never sees the slot's pre-prepare
        return [(dst, msg)]

    def reply(self, client: str, reply: Reply) -> list[Out]:
        if (client, reply.timestamp) in self._answered:
            return []  # answered early already; the genuine reply is withheld
        return [(client, reply)]
