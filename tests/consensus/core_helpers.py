"""Helpers for the core unit tests: deterministic keys and a tiny in-process network.

``Net`` delivers the actions of ``ReplicaCore``s to each other in FIFO order, with no
randomness: every message goes through ``codec.encode``/``codec.decode`` (so the codec is
exercised by every run), ``Persist`` records are kept per replica (as storage would), and
timers are recorded so a test can fire them by hand.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from node.app.kv import KVStore, decode_result, op_get, op_put
from node.consensus.core import ReplicaCore
from node.consensus.events import (
    Broadcast,
    CancelTimer,
    FetchState,
    MessageReceived,
    Persist,
    Rejected,
    ReplyToClient,
    RequestReceived,
    Send,
    StartTimer,
    TimerFired,
)
from node.consensus.params import CoreConfig
from node.consensus.records import StoredState
from node.consensus.recovery import recover
from node.consensus.rules import Rules
from node.protocol import codec
from node.protocol.crypto import Signer, sign_message
from node.protocol.messages import Request, StateRequest


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def replica_signer(i: int) -> Signer:
    return Signer(seed(f"replica-{i}"))


CLIENT = Signer(seed("client"))
CLIENT_KEYS = {"client": CLIENT.public_key}


def replica_keys(n: int) -> dict[int, bytes]:
    return {i: replica_signer(i).public_key for i in range(n)}


def make_request(session: str, ts: int, op: bytes, signer: Signer = CLIENT) -> Request:
    return sign_message(Request(f"client/{session}", ts, op), signer)


def make_core(cfg: CoreConfig, i: int, rules: Rules | None = None) -> ReplicaCore:
    return ReplicaCore(
        cfg, i, replica_signer(i), replica_keys(cfg.n), CLIENT_KEYS, KVStore(), rules=rules
    )


def config(**overrides: Any) -> CoreConfig:
    base = dict(
        n=4,
        f=1,
        batch_max=10,
        checkpoint_interval=10,
        watermark_window=20,
        view_change_timeout_s=1.0,
        batch_timeout_s=0.01,
    )
    base.update(overrides)
    return CoreConfig(**base)  # type: ignore[arg-type]


Filter = Callable[[int, int, Any], bool]


@attrs.define
class Net:
    cores: dict[int, ReplicaCore]
    queue: deque[tuple[int, int, Any]] = attrs.Factory(deque)
    timers: dict[int, dict[str, float]] = attrs.Factory(lambda: defaultdict(dict))
    stored: dict[int, list[Any]] = attrs.Factory(lambda: defaultdict(list))
    replies: dict[str, list[Any]] = attrs.Factory(lambda: defaultdict(list))
    #: every action each replica emitted, in order
    events: dict[int, list[Any]] = attrs.Factory(lambda: defaultdict(list))
    down: set[int] = attrs.Factory(set)
    #: return True to drop a message (sender, receiver, msg)
    drop: Filter | None = None
    wire: bool = True
    delivered: int = 0

    @classmethod
    def build(cls, cfg: CoreConfig) -> Net:
        net = cls({i: make_core(cfg, i) for i in range(cfg.n)})
        for i, core in net.cores.items():
            net.apply(i, core.start())  # arms the status timer; tests fire it by hand
        return net

    def apply(self, i: int, actions: Iterable[Any]) -> None:
        for action in actions:
            kind = type(action)
            self.events[i].append(action)
            if kind is Persist:
                self.stored[i].extend(action.records)
            elif kind is Send:
                self.queue.append((i, action.to, action.msg))
            elif kind is Broadcast:
                for j in self.cores:
                    if j != i:
                        self.queue.append((i, j, action.msg))
            elif kind is ReplyToClient:
                self.replies[action.client].append(action.reply)
            elif kind is StartTimer:
                self.timers[i][action.timer] = action.delay_s
            elif kind is CancelTimer:
                self.timers[i].pop(action.timer, None)
            elif kind is FetchState:
                for j in self.cores:
                    if j != i:
                        self.queue.append((j, j, ("state_request", i, action.seq)))

    def handle(self, i: int, event: Any) -> list[Any]:
        actions = self.cores[i].handle(event)
        self.apply(i, actions)
        return actions

    def deliver(self, max_steps: int = 1_000_000) -> int:
        steps = 0
        while self.queue and steps < max_steps:
            steps += 1
            sender, to, msg = self.queue.popleft()
            if sender in self.down or to in self.down:
                continue
            if type(msg) is tuple:  # FetchState: the requester asks peer ``to``
                _, requester, _seq = msg
                after = self.cores[requester].last_executed
                self.queue.append((requester, to, StateRequest(after, requester)))
                continue
            if self.drop is not None and self.drop(sender, to, msg):
                continue
            if self.wire:
                msg = codec.decode(codec.encode(msg))
            self.delivered += 1
            self.handle(to, MessageReceived(sender, msg))
        return steps

    def submit(self, req: Request, to: Iterable[int] | None = None) -> None:
        targets = list(self.cores) if to is None else list(to)
        for i in targets:
            if i not in self.down:
                self.handle(i, RequestReceived(req))

    def fire(self, i: int, timer: str) -> bool:
        if i in self.down or timer not in self.timers[i]:
            return False
        del self.timers[i][timer]
        self.handle(i, TimerFired(timer))
        return True

    def fire_all(self, timer: str) -> None:
        for i in sorted(self.cores):
            self.fire(i, timer)

    def crash(self, i: int) -> None:
        self.down.add(i)
        self.timers[i].clear()

    def recover(self, i: int, cfg: CoreConfig) -> list[Any]:
        stored = StoredState.from_records(self.stored[i])
        core, actions = recover(
            cfg, i, replica_signer(i), replica_keys(cfg.n), CLIENT_KEYS, KVStore(), stored
        )
        self.cores[i] = core
        self.down.discard(i)
        self.apply(i, actions)
        return actions

    def rejected(self, i: int) -> list[Rejected]:
        return [e for e in self.events[i] if type(e) is Rejected]

    def of_type(self, i: int, kind: type) -> list[Any]:
        return [e for e in self.events[i] if type(e) is kind]

    def replies_for(self, session: str, ts: int) -> dict[int, bytes]:
        return {r.replica: r.result for r in self.replies[f"client/{session}"] if r.timestamp == ts}


def put(session: str, ts: int, key: str, value: str) -> Request:
    return make_request(session, ts, op_put(key, value))


def get(session: str, ts: int, key: str) -> Request:
    return make_request(session, ts, op_get(key))


def result_status(result: bytes) -> tuple[str, bytes | None]:
    return decode_result(result)


def run_requests(net: Net, reqs: Iterable[Request], to: Iterable[int] | None = (0,)) -> None:
    for req in reqs:
        net.submit(req, to)
    net.deliver()
    # cut the last partial batch
    for _ in range(100):
        if not any("batch" in net.timers[i] for i in net.cores if i not in net.down):
            break
        net.fire_all("batch")
        net.deliver()
