"""The simulation: n real `ReplicaCore`s, clients and adversaries on one virtual clock.

`Simulation(params).run()` plays one schedule to the end and returns a `SimResult`. Each
step pops the next entry of the seeded `EventQueue` (a message delivery, a timer, a
client action, a crash, a restart, a partition, GST), feeds it to the right core, applies
the actions that come out exactly as the Trio shell does (all `Persist` records of the
round first, as one transaction, then the rest in order) and then checks every invariant.
Beside the ledger, `checks.SpecChecks` records what each correct replica holds
(delivered to it, or sent by it) and checks what it sends, the views it enters and
every execution against that. The schedule stops at the first violation, when every
client has its results, or when the liveness bound after GST runs out.
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

from node.consensus.core import ReplicaCore
from node.consensus.events import (
    Broadcast,
    CancelTimer,
    Executed,
    FetchState,
    MessageReceived,
    Persist,
    Rejected,
    ReplyToClient,
    RequestReceived,
    RolledBack,
    Send,
    StartTimer,
    StateTransferred,
    TimerFired,
    ViewChanged,
)
from node.consensus.rules import Rules
from node.protocol import codec
from node.protocol.messages import Commit, ReadRequest

from . import lifecycle
from .cast import core_config, make_adversaries, make_clients, signers, verify_cache
from .checks import SpecChecks
from .convergence import settled
from .invariants import Invariants, RecordingApp
from .keys import cluster_keys
from .network import NetworkModel
from .params import ScheduleParams, schedule_rng
from .payloads import (
    ClientStep,
    Control,
    Deliver,
    FetchRetry,
    Tick,
    TimerDue,
    ToClient,
    ToReplica,
)
from .result import SimResult
from .scheduler import EventQueue
from .store import DurableStore
from .trace import Trace

TICK_S = 0.25
DRAIN_S = 0.3  # keep running this long after the last client result


class Simulation:
    """One schedule: the cores, the network, the clients and the adversaries."""

    def __init__(
        self,
        params: ScheduleParams,
        rules: type[Rules] = Rules,
        replay_hint: str | None = None,
    ) -> None:
        p = self.params = params
        #: every replica's rules (a planted bug replaces one)
        self.rules = rules(p.f)
        self.replay_hint = replay_hint or f"python -m tests.sim.replay {p.seed} --n {p.n}"
        self.cfg = core_config(p)
        keys = cluster_keys(p.n)
        self.replica_keys = keys.replica_public
        self.client_keys = keys.client_public
        self.signers, client_signers, outsider = signers(p.n)
        self.queue = EventQueue(schedule_rng(p.seed, p.n, "queue"))
        self.net = NetworkModel(schedule_rng(p.seed, p.n, "net"), p.network)
        self.trace = Trace()
        self.ledger = Invariants(p.correct)
        self.checks = SpecChecks(p.n, p.f, keys, self.ledger)
        #: node -> identity: replica r is node r; a twin of r (twins.py) is another node
        self.identity = [*range(p.n), *p.twins]
        self.copies = {
            r: [i for i, who in enumerate(self.identity) if who == r] for r in range(p.n)
        }
        self.stores = [DurableStore() for _ in self.identity]
        self.cores: list[ReplicaCore | None] = [
            self._new_core(i) for i in range(len(self.identity))
        ]
        self.incarnation = [0] * len(self.identity)
        self.timers: dict[tuple[int, str], Any] = {}
        self.crash_mid_round: set[int] = set()
        #: replicas to crash as soon as they hold 2f commits for a batch not yet executed
        self.crash_on_commit: set[int] = set()
        #: replica -> incarnation whose fetch task is running
        self.fetch_chain: dict[int, int] = {}
        #: replica -> its last executed sequence number when it crashed
        self.executed_at_crash: dict[int, int] = {}
        self.adversaries = make_adversaries(p, self.signers, outsider, self._core)
        self.clients = make_clients(p, client_signers)
        self.by_session = {c.session: i for i, c in enumerate(self.clients)}
        self.steps = 0
        #: the input the core being fed is handling (what its view changes may rest on)
        self.cause: Any = None
        self.view_changes = 0
        self.state_transfers = 0
        self.restarts = 0
        self.rollbacks = 0  # tentative batches undone
        self.rejected: Counter[str] = Counter()
        self.finished_at: float | None = None
        self._plan()

    # --- setup ----------------------------------------------------------------------------
    def _core(self, r: int) -> ReplicaCore:
        core = self.cores[r]
        assert core is not None
        return core

    def _new_core(self, node: int) -> ReplicaCore:
        r = self.identity[node]
        return ReplicaCore(
            self.cfg,
            r,
            self.signers[r],
            self.replica_keys,
            self.client_keys,
            RecordingApp(node, self.ledger),
            verify_cache=verify_cache(self.params.n),
            rules=self.rules,
        )

    def name(self, node: int) -> int | str:
        """How the trace shows a node: its replica id, primed for a twin (`0'`)."""
        return node if node < self.params.n else f"{self.identity[node]}'"

    def _plan(self) -> None:
        p, q = self.params, self.queue
        for i, start in enumerate(p.client_start):
            q.schedule_at(start, ClientStep(i))
        for crash in p.crashes:
            mid = schedule_rng(p.seed, p.n, "mid").random() < 0.5
            what = "crash_on_commit" if crash.on_commit else "crash_mid_round" if mid else "crash"
            q.schedule_at(crash.at, Control(what, crash.replica))
            q.schedule_at(crash.restart_at, Control("restart", crash.replica))
        for part in p.partitions:
            q.schedule_at(part.at, Control("partition", part.groups))
            q.schedule_at(part.until, Control("heal"))
        q.schedule_at(p.gst, Control("gst"))
        for r in self.adversaries:
            q.schedule_at(TICK_S, Tick(r))
        for r, core in enumerate(self.cores):
            assert core is not None
            self.apply(r, core.start())

    # --- main loop -------------------------------------------------------------------------
    def run(self) -> SimResult:
        p, q, ledger = self.params, self.queue, self.ledger
        deadline = p.settle_time + p.liveness_bound_s
        while not ledger.violations:
            entry = q.pop()
            if entry is None:
                break
            self.steps += 1
            try:
                self.dispatch(entry.payload)
            except Exception:  # noqa: BLE001 - a crash on any input is a finding, with trace
                ledger.fail("exception", traceback.format_exc(limit=-6))
                break
            self.check_progress()
            if self.finished_at is None and all(c.done for c in self.clients):
                self.finished_at = q.now
            if self.finished_at is not None and q.now > self.finished_at + DRAIN_S:
                if settled(self, self.finished_at):
                    break
            if q.now > deadline or self.steps >= p.max_steps:
                break
        if not ledger.violations and self.finished_at is None:
            waiting = [
                f"{c.session} ts={c.current.request.timestamp}" for c in self.clients if c.current
            ] or ["requests not yet started"]
            ledger.fail(
                "liveness",
                f"after {self.steps} steps / {q.now:.2f}s (settled at {p.settle_time:.2f}s) "
                f"still waiting: {', '.join(waiting)}",
            )
        return SimResult(
            p,
            list(ledger.violations),
            self.trace,
            self.steps,
            q.now,
            len(ledger.executed),
            self.view_changes,
            self.state_transfers,
            self.restarts,
            sum(len(c.history) for c in self.clients if c.done),
            self.rejected,
            self.replay_hint,
        )

    def check_progress(self) -> None:
        """Per-step state-digest check for every correct replica that executed further."""
        ledger = self.ledger
        for r in ledger.correct:
            core = self.cores[r]
            if core is not None and core.last_executed != ledger.last_executed.get(r, 0):
                ledger.on_progress(r, core.last_executed, core.app.state())

    # --- dispatch -------------------------------------------------------------------------
    def dispatch(self, ev: Any) -> None:
        kind = type(ev)
        now = self.queue.now
        if kind is Deliver:
            core = self.cores[ev.dst]
            if core is None:
                self.trace.add(now, "lost", ev.src, self.name(ev.dst), ev.msg)
                return
            self.trace.add(now, "deliver", ev.src, self.name(ev.dst), ev.msg)
            self.checks.delivered(ev.dst, ev.msg)
            adv = self.adversaries.get(ev.dst)
            if adv is not None:
                adv.observe(ev.src, ev.msg)
            self.feed(ev.dst, MessageReceived(ev.src, ev.msg))
            if ev.dst in self.crash_on_commit and type(ev.msg) is Commit:
                lifecycle.maybe_crash_on_commit(self, ev.dst, ev.msg)
        elif kind is ToReplica:
            if self.cores[ev.dst] is None:
                return
            self.trace.add(now, "request", ev.client, self.name(ev.dst), ev.request)
            adv = self.adversaries.get(ev.dst)
            if adv is not None:
                adv.observe(ev.client, ev.request)
            self.feed(ev.dst, RequestReceived(ev.request))
        elif kind is ToClient:
            self.trace.add(now, "reply", ev.src, ev.client, ev.reply)
            self.on_reply(ev)
        elif kind is TimerDue:
            self.timers.pop((ev.replica, ev.name), None)
            self.trace.add(now, "timer", self.name(ev.replica), None, ev.name)
            self.feed(ev.replica, TimerFired(ev.name))
        elif kind is ClientStep:
            self.client_step(ev)
        elif kind is FetchRetry:
            lifecycle.fetch(self, ev.replica, ev.attempt, ev.incarnation)
        elif kind is Tick:
            adv = self.adversaries[ev.replica]
            if self.cores[ev.replica] is not None:
                self.emit(ev.replica, adv.tick())
            self.queue.schedule(TICK_S, ev)
        else:
            lifecycle.control(self, ev)

    def feed(self, r: int, event: Any) -> None:
        core = self.cores[r]
        if core is not None:
            self.cause = event
            self.apply(r, core.handle(event))
            self.cause = None

    def apply(self, r: int, actions: list[Any]) -> None:
        """Perform one round's actions the way the shell does."""
        records = [rec for a in actions if type(a) is Persist for rec in a.records]
        if records:
            self.stores[r].write(records)
        if r in self.crash_mid_round:
            self.crash_mid_round.discard(r)
            self.trace.add(self.queue.now, "crash", r, None, "after persist, before sends")
            lifecycle.crash(self, r)
            return
        adv = self.adversaries.get(r)
        if adv is not None:
            self.emit(r, adv.outgoing(actions))
        entered = []
        for a in actions:
            kind = type(a)
            if adv is None and kind in (Send, Broadcast, ReplyToClient):
                if kind is not ReplyToClient:
                    self.checks.sent(r, a.msg, self.cause)
                if kind is Send:
                    self.send(r, a.to, a.msg)
                elif kind is Broadcast:
                    for dst in range(self.params.n):
                        if dst != self.identity[r]:
                            self.send(r, dst, a.msg)
                else:
                    self.send_reply(r, a.client, a.reply)
            elif kind is StartTimer:
                self.cancel_timer(r, a.timer)
                self.timers[(r, a.timer)] = self.queue.schedule(a.delay_s, TimerDue(r, a.timer))
            elif kind is CancelTimer:
                self.cancel_timer(r, a.timer)
            elif kind is Executed:
                self.trace.add(self.queue.now, "executed", self.name(r), None, a)
                self.ledger.on_executed(r, a.seq, a.digest)
                self.checks.executed(r, a)
            elif kind is FetchState:
                self.trace.add(self.queue.now, "fetch", self.name(r), None, a)
                if self.fetch_chain.get(r) != self.incarnation[r]:  # one fetch at a time
                    self.fetch_chain[r] = self.incarnation[r]
                    lifecycle.fetch(self, r, 0, self.incarnation[r])
            elif kind is ViewChanged:
                self.view_changes += 1
                entered.append(a.view)
                self.trace.add(self.queue.now, "newview", self.name(r), None, f"view={a.view}")
            elif kind is Rejected:
                self.rejected[a.reason] += 1
                self.checks.rejected(r, a)
            elif kind is RolledBack:
                self.rollbacks += 1
            elif kind is StateTransferred:
                self.state_transfers += 1
                self.trace.add(self.queue.now, "transfer", self.name(r), None, f"seq={a.seq}")
        for view in entered:  # after the round: a new primary's NewView is in it too
            self.checks.entered(r, view)

    def emit(self, r: int, outs: list[tuple[Any, Any]]) -> None:
        """Byzantine output: every message must survive the real codec, as on the wire."""
        for dst, msg in outs:
            try:
                msg = codec.decode(codec.encode_uncached(msg))
            except Exception:  # noqa: BLE001 - unencodable garbage never reaches a peer
                self.trace.add(self.queue.now, "garbled", r, dst, type(msg).__name__)
                continue
            if isinstance(dst, str):
                self.send_reply(r, dst, msg)
            elif dst != self.identity[r]:
                self.send(r, dst, msg)

    def send(self, src: int, dst: int, msg: Any) -> None:
        """Node `src` sends to replica `dst`: to every node running it that `src` reaches."""
        who = self.identity[src]
        for node in self.copies[dst]:
            delays = self.net.route(src, node)
            if not delays:
                self.trace.add(self.queue.now, "drop", self.name(src), self.name(node), msg)
            for d in delays:
                self.queue.schedule(d, Deliver(who, node, msg))

    def send_reply(self, src: int, client: str, reply: Any) -> None:
        for d in self.net.route(src, client):
            self.queue.schedule(d, ToClient(self.identity[src], client, reply))

    def cancel_timer(self, r: int, name: str) -> None:
        entry = self.timers.pop((r, name), None)
        if entry is not None:
            entry.cancelled = True

    # --- clients --------------------------------------------------------------------------
    def client_step(self, ev: ClientStep) -> None:
        client = self.clients[ev.client]
        now = self.queue.now
        if ev.retry_ts is None:
            request = client.next_request(now)
            if request is None:
                return
            self.ledger.client_created(request.operation, client.session, request.timestamp)
            # a read-only request goes to every replica; an ordered one to the primary
            read_only = type(request) is ReadRequest
            targets = list(range(self.params.n)) if read_only else [client.primary_guess]
        else:
            current = client.current
            if current is None or current.request.timestamp != ev.retry_ts:
                return
            fallback = client.fall_back()  # a read-only request 2f+1 did not agree on
            if fallback is not None:
                request = fallback
                self.ledger.client_created(request.operation, client.session, request.timestamp)
                targets = [client.primary_guess]
            else:
                request = current.request
                targets = list(range(self.params.n))
        for dst in targets:
            for node in self.copies[dst]:
                for d in self.net.route(client.session, node):
                    self.queue.schedule(d, ToReplica(client.session, node, request))
        retry = ClientStep(ev.client, request.timestamp)
        self.queue.schedule(self.params.client_retry_s, retry)

    def on_reply(self, ev: ToClient) -> None:
        index = self.by_session.get(ev.client)
        if index is None:
            return
        client = self.clients[index]
        accepted = client.on_reply(ev.src, ev.reply, self.queue.now)
        if accepted is not None:
            self.trace.add(self.queue.now, "accepted", ev.client, None, accepted.request)
            ts = accepted.request.timestamp
            self.ledger.client_accepted(client.session, ts, client.wrong_result(accepted))
            self.queue.schedule(0.0, ClientStep(index))
