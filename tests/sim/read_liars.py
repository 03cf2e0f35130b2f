"""A Byzantine replica that attacks the read-only path (`node/consensus/readonly.py`).

It answers every read at once, from whatever its core has executed at that moment (the
stale answer a replica that did not wait for its prepared frontier would give), now and
then with a plain lie (`absent`), and withholds its core's own, correct answer. The
clients must still accept only what 2f+1 replicas agree on: the correct replicas' wait is
what keeps such stale answers from ever reaching a quorum with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.app.kv import encode_result
from node.protocol.messages import ReadRequest, Reply

from .adversary import Adversary, AdversaryContext, Out

MAX_REMEMBERED = 1000


class StaleReads(Adversary):
    kind = "stale_reads"

    def __init__(self, ctx: AdversaryContext) -> None:
        super().__init__(ctx)
        self._arrived: list[ReadRequest] = []
        self._answered: set[tuple[str, int]] = set()

    def observe(self, sender: int | str, msg: Any) -> None:
        super().observe(sender, msg)
        if isinstance(msg, ReadRequest):
            self._arrived.append(msg)

    def outgoing(self, actions: Sequence[Any]) -> list[Out]:
        out: list[Out] = []
        core = self.ctx.core()
        for read in self._arrived:  # at once: no wait for what it had prepared
            result = core._exec.app.query(read.operation)
            if result is None:
                continue
            if self.rng.random() < 0.2:
                result = encode_result("absent")
            out.append(
                (read.client, Reply(core.view, read.timestamp, read.client, self.me, result))
            )
            if len(self._answered) >= MAX_REMEMBERED:
                self._answered.clear()
            self._answered.add(read.key)
        self._arrived.clear()
        return out + super().outgoing(actions)

    def reply(self, client: str, reply: Reply) -> list[Out]:
        if (client, reply.timestamp) in self._answered:
            return []  # its core's answer, after the wait, is withheld
        return [(client, reply)]
