"""Per-peer guards on Trio: breaker + adaptive timeout + fallback queue + health.

`GuardSet` owns one `PeerGuard` per peer and is the only thing the replica shell talks to:

    guards = GuardSet(peers, f, breaker_cfg, timeout_cfg, fallback_cfg,
                      send=link_send, probe=ping, rng=random.Random(seed), hooks=hooks)
    await nursery.start(guards.run)                 # probe and drain tasks
    outcome = await guards.send(peer, frame, priority=2, key=("checkpoint",))
    result = await guards.call(peer, fetch_state)   # request/response, a CallResult
    for peer in guards.best_peers(exclude={me}): ...
    guards.snapshot(peer)                           # the /status peer fields

A guarded call: breaker permit -> a cancel scope with the adaptive deadline (the
`move_on_after` semantics, deadline taken from the admission time) around the awaited
operation -> record outcome and latency. A timeout is a failure (and its elapsed time is
fed to the adaptive timeout as a lower-bound sample); a transport or OS error from the
operation is a failure; any other exception is a bug in this process, logged as one and not
charged to the peer (the permit is released); `Cancelled` from outside propagates and
releases the permit without counting.
A one-way send (``one_way=True``, and every ``send`` of a set built with
``one_way_sends=True``: the frame was handed to a connected link, nothing came back) counts as a success in the metrics but is no evidence that the peer is alive: it
neither resets the failure streak nor closes a half-open circuit nor feeds the adaptive
timeout. Only round trips (heartbeats, probes) do, so a peer that receives but never
answers trips its circuit however much is sent to it.

Background work (`run`, in its own nursery; see `node.shell.guard_tasks`): per peer a
probe loop (when an open timeout elapses, up to `half_open_max_calls` concurrent
`probe(peer)` calls test it; quorum rule: while more than `f` circuits are open, open
circuits are probed after the base open timeout instead of their backoff), and a drain task
whenever a closed circuit has queued items (priority order, through the breaker, stops as
soon as the circuit is not closed; unsent items stay queued).

Time is `trio.current_time()`, passed into the pure objects.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable, Iterator
from typing import Any

import trio

from node.resilience import (
    AdaptiveTimeout,
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    FallbackConfig,
    FallbackQueue,
    HealthConfig,
    PeerHealth,
    QueuedItem,
    TimeoutConfig,
    rank_peers,
)
from node.shell.guard_tasks import drain, probe_loop
from node.shell.peer_guard import (
    _REJECTED,
    FAILURE,
    PEER_ERRORS,
    REJECTED,
    SUCCESS,
    TIMEOUT,
    CallResult,
    GuardHooks,
    Outcome,
    PeerGuard,
)

log = logging.getLogger("bft.guard")

__all__ = ["CallResult", "GuardHooks", "GuardSet", "PeerGuard", "SendFn", "ProbeFn"]

SendFn = Callable[[str, bytes], Awaitable[None]]
ProbeFn = Callable[[str], Awaitable[Any]]


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # built outside trio.run
        return 0.0


class GuardSet:
    """All peers' guards, the guarded call path, and the background recovery tasks."""

    def __init__(
        self,
        peers: Iterable[str],
        f: int,
        breaker_cfg: BreakerConfig,
        timeout_cfg: TimeoutConfig,
        fallback_cfg: FallbackConfig,
        send: SendFn,
        probe: ProbeFn | None,
        rng: random.Random,
        hooks: GuardHooks | None = None,
        one_way_sends: bool = False,
        health_cfg: HealthConfig | None = None,
    ) -> None:
        names = list(peers)
        if len(set(names)) != len(names) or not all(isinstance(p, str) and p for p in names):
            raise ValueError(f"peers must be distinct non-empty strings, got {names!r}")
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ValueError(f"f must be a non-negative int, got {f!r}")
        self.f = f
        self.breaker_cfg = breaker_cfg
        self.hooks = hooks if hooks is not None else GuardHooks()
        self._send_fn = send
        self.probe_fn = probe
        #: `send` only hands frames to a link (the replica's case): see the module doc
        self.one_way_sends = one_way_sends
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()
        now = _now()
        self._guards: dict[str, PeerGuard] = {}
        for peer in names:
            breaker = CircuitBreaker(peer, breaker_cfg, rng, now=now)
            breaker.subscribe(self._on_transition)
            self._guards[peer] = PeerGuard(
                peer=peer,
                breaker=breaker,
                timeout=AdaptiveTimeout(timeout_cfg, breaker_cfg.request_timeout_s),
                queue=FallbackQueue(fallback_cfg, peer=peer, on_drop=self._drop_reporter(peer)),
                health=PeerHealth(health_cfg),
                reported_timeout=breaker_cfg.request_timeout_s,
            )

    # -- lookups --------------------------------------------------------------------

    @property
    def peers(self) -> list[str]:
        return list(self._guards)

    def __getitem__(self, peer: str) -> PeerGuard:
        try:
            return self._guards[peer]
        except KeyError:
            raise KeyError(f"unknown peer {peer!r}") from None

    def __iter__(self) -> Iterator[PeerGuard]:
        return iter(self._guards.values())

    def open_count(self) -> int:
        """Peers whose circuit is OPEN (forced or not)."""
        return sum(1 for g in self._guards.values() if g.breaker.state is CircuitState.OPEN)

    def closed_count(self) -> int:
        """Peers whose circuit is CLOSED."""
        return sum(1 for g in self._guards.values() if g.breaker.state is CircuitState.CLOSED)

    def quorum_at_risk(self) -> bool:
        """More than f circuits open: open circuits probe at the base open timeout."""
        return self.open_count() > self.f

    def best_peers(self, exclude: Collection[str] = ()) -> list[str]:
        """Peers for request/response work, healthiest first, open circuits skipped."""
        now = _now()
        return rank_peers(
            ((g.peer, g.score(now), g.breaker.state) for g in self._guards.values()), exclude
        )

    def snapshot(self, peer: str) -> dict[str, Any]:
        return self[peer].snapshot(_now())

    def snapshot_all(self) -> dict[str, dict[str, Any]]:
        now = _now()
        return {peer: g.snapshot(now) for peer, g in self._guards.items()}

    # -- calls ----------------------------------------------------------------------

    async def call(self, peer: str, async_fn: Callable[[], Awaitable[Any]]) -> CallResult:
        """Run `async_fn()` through `peer`'s breaker and adaptive timeout."""
        return await self.guarded(self[peer], async_fn)

    async def send(
        self, peer: str, data: bytes, priority: int = 0, key: Hashable | None = None
    ) -> str:
        """Send `data` to `peer` through its breaker, or queue it for the drain.

        Returns "sent", "queued" (circuit open, or the send failed / timed out) or
        "dropped" (the fallback queue refused it). A direct delivery also supersedes an
        older queued item with the same `key`. Higher `priority` is drained first.
        """
        guard = self[peer]
        mark = guard.queue.last_seq
        result = await self.guarded(guard, self._send_fn, peer, data, one_way=self.one_way_sends)
        if result.ok:
            if key is not None and guard.queue.supersede(key, up_to_seq=mark):
                self.report_depth(guard)
            return "sent"
        attempts = 0 if result.outcome == REJECTED else 1
        queued = guard.queue.push(
            data, priority=priority, key=key, now=trio.current_time(), attempts=attempts
        )
        self.report_depth(guard)
        self.maybe_start_drain(guard)
        return "queued" if queued else "dropped"

    async def guarded(
        self,
        guard: PeerGuard,
        async_fn: Callable[..., Awaitable[Any]],
        *args: Any,
        one_way: bool = False,
    ) -> CallResult:
        """The guarded call path: acquire, run under the adaptive deadline, record."""
        now = trio.current_time()
        permit = guard.breaker.acquire(now)
        if permit is None:
            if self.hooks.on_reject is not None:
                self.hooks.on_reject(guard.peer)
            await trio.lowlevel.checkpoint()  # a loop over rejected calls still yields
            return _REJECTED
        return await self._run(guard, permit, now, async_fn, args, one_way=one_way)

    async def run_permitted(
        self, guard: PeerGuard, permit: int, async_fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> CallResult:
        """Run a call that already holds `permit`; settles or releases the permit."""
        return await self._run(guard, permit, trio.current_time(), async_fn, args)

    async def run_probe(self, guard: PeerGuard, permit: int) -> CallResult:
        """A half-open probe: like `run_permitted`, but it may take the configured
        `request_timeout_s` when that is longer than the adaptive deadline. The adaptive
        window holds the peer's healthy past (or nothing useful after an outage), and one
        late answer from a peer that is still warming up would re-open the circuit with a
        longer backoff."""
        assert self.probe_fn is not None
        floor = self.breaker_cfg.request_timeout_s
        return await self._run(
            guard, permit, trio.current_time(), self.probe_fn, (guard.peer,), min_deadline_s=floor
        )

    async def _run(
        self,
        guard: PeerGuard,
        permit: int,
        start: float,
        async_fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        min_deadline_s: float = 0.0,
        one_way: bool = False,
    ) -> CallResult:
        settled = False
        try:
            limit = max(guard.timeout.timeout(), min_deadline_s)
            with trio.CancelScope(deadline=start + limit) as scope:
                try:
                    value = await async_fn(*args)
                except PEER_ERRORS as exc:
                    settled = True
                    return self._settle(guard, permit, FAILURE, start, error=exc)
                except Exception as exc:  # a bug here, not the peer's failure
                    settled = True
                    guard.breaker.release(permit)
                    log.error("event=bug peer=%s call=%r", guard.peer, async_fn, exc_info=exc)
                    return CallResult(FAILURE, error=exc)
            settled = True
            if scope.cancelled_caught:
                return self._settle(guard, permit, TIMEOUT, start)
            return self._settle(guard, permit, SUCCESS, start, value=value, one_way=one_way)
        finally:
            if not settled:  # cancelled from outside (or a BaseException): count nothing
                guard.breaker.release(permit)

    def _settle(
        self,
        guard: PeerGuard,
        permit: int,
        outcome: Outcome,
        start: float,
        *,
        value: Any = None,
        error: Exception | None = None,
        one_way: bool = False,
    ) -> CallResult:
        now = trio.current_time()
        latency = now - start
        if outcome == SUCCESS and one_way:
            guard.breaker.release(permit)  # delivered to the link: says nothing of the peer
        elif outcome == SUCCESS:
            guard.timeout.record(latency)
            guard.health.record_success(latency)
            guard.breaker.record_success(permit, now)
        else:
            if outcome == TIMEOUT:
                guard.timeout.record(latency)
            guard.health.record_failure()
            guard.breaker.record_failure(permit, now)
        hooks = self.hooks
        if hooks.on_call is not None:
            hooks.on_call(guard.peer, outcome, latency)
        self.report_timeout(guard)
        return CallResult(outcome, value, error, latency)

    # -- manual control and evidence -----------------------------------------------

    def record_evidence(self, peer: str, kind: str) -> float:
        """Byzantine evidence against `peer` (e.g. "invalid_signature", "equivocation")."""
        return self[peer].health.record_evidence(kind, _now())

    def force_open(self, peer: str) -> None:
        self[peer].breaker.force_open(_now())

    def force_close(self, peer: str) -> None:
        self[peer].breaker.force_close(_now())

    def reset(self, peer: str) -> None:
        guard = self[peer]
        guard.breaker.reset(_now())
        guard.timeout.clear()
        guard.health.reset()
        self.report_timeout(guard)

    # -- background work -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the per-peer probe loops and drain tasks until cancelled."""
        if self._nursery is not None:
            raise RuntimeError("GuardSet.run is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for guard in self._guards.values():
                    nursery.start_soon(probe_loop, self, guard, name=f"probe:{guard.peer}")
                    self.report_timeout(guard, force=True)
                    self.report_depth(guard, force=True)
                    self.maybe_start_drain(guard)
                task_status.started()
        finally:
            self._nursery = None

    def changed_event(self) -> trio.Event:
        """An event set at the next state transition of any peer."""
        return self._changed

    def drain_allowed(self, guard: PeerGuard) -> bool:
        """The drain may send while the circuit is closed (or half-open with no probe
        function, when queued traffic is the only way to test the peer)."""
        state = guard.breaker.state
        return state is CircuitState.CLOSED or (
            state is CircuitState.HALF_OPEN and self.probe_fn is None
        )

    def maybe_start_drain(self, guard: PeerGuard) -> None:
        if (
            self._nursery is not None
            and not guard.draining
            and guard.queue
            and self.drain_allowed(guard)
        ):
            guard.draining = True
            self._nursery.start_soon(drain, self, guard, name=f"drain:{guard.peer}")

    def report_depth(self, guard: PeerGuard, *, force: bool = False) -> None:
        depth = len(guard.queue)
        if depth != guard.reported_depth or force:
            guard.reported_depth = depth
            if self.hooks.on_queue_change is not None:
                self.hooks.on_queue_change(guard.peer, depth)

    def report_timeout(self, guard: PeerGuard, *, force: bool = False) -> None:
        """Tell `on_timeout_change` when the deadline moved by more than 0.1%."""
        value = guard.timeout.timeout()
        last = guard.reported_timeout
        if force or abs(value - last) > 0.001 * last:
            guard.reported_timeout = value
            if self.hooks.on_timeout_change is not None:
                self.hooks.on_timeout_change(guard.peer, value)

    async def send_queued(self, guard: PeerGuard, item: QueuedItem) -> CallResult:
        return await self.guarded(
            guard, self._send_fn, guard.peer, item.payload, one_way=self.one_way_sends
        )

    def _on_transition(self, peer: str, old: CircuitState, new: CircuitState, now: float) -> None:
        if self.hooks.on_transition is not None:
            self.hooks.on_transition(peer, old.value, new.value)
        event, self._changed = self._changed, trio.Event()
        event.set()
        self.maybe_start_drain(self._guards[peer])

    def _drop_reporter(self, peer: str) -> Callable[[str, QueuedItem], None]:
        def report(reason: str, _item: QueuedItem) -> None:
            if self.hooks.on_queue_drop is not None:
                self.hooks.on_queue_drop(peer, reason)

        return report
