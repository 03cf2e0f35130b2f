"""The guards' background tasks: half-open probing and fallback-queue draining.

Both run in `GuardSet.run`'s nursery and only use the GuardSet's public methods.

- `probe_loop(guards, guard)`, one per peer for the GuardSet's lifetime: while the circuit
  is OPEN it sleeps until the half-open test is due (the base open timeout after opening
  while more than f circuits are open, the backed-off timeout otherwise; it re-checks at
  every transition of any peer), then moves the breaker to HALF_OPEN and runs probe rounds
  of up to `half_open_max_calls` concurrent `probe(peer)` calls until the circuit closes
  or re-opens. Without a probe function, queued traffic tests the peer instead.
- `drain(guards, guard)`, started by `GuardSet.maybe_start_drain` when a closed circuit has
  queued items: sends them one at a time in priority order through the breaker; a failed
  item goes back (one attempt counted); the task stops as soon as the circuit is no longer
  closed, leaving the rest queued. If cancelled mid-send, the item goes back uncounted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from node.resilience import CircuitState

if TYPE_CHECKING:
    from node.shell.guard import CallResult, GuardSet, PeerGuard

__all__ = ["drain", "probe_loop", "probe_round"]


async def probe_loop(guards: GuardSet, guard: PeerGuard) -> None:
    breaker = guard.breaker
    while True:
        changed = guards.changed_event()
        state = breaker.state
        if state is CircuitState.OPEN:
            due = breaker.half_open_due(urgent=guards.quorum_at_risk())
            if due == math.inf:  # forced open: wait for an operator's decision
                await changed.wait()
            elif trio.current_time() >= due:
                breaker.enter_half_open(trio.current_time())
            else:
                with trio.move_on_at(due):
                    await changed.wait()
        elif state is CircuitState.HALF_OPEN:
            if guards.probe_fn is not None and breaker.half_open_free_slots:
                await probe_round(guards, guard)
            else:
                # Live calls hold the test slots, or (no probe function) queued traffic
                # is the test: (re)start the drain and look again when calls may be done.
                guards.maybe_start_drain(guard)
                with trio.move_on_after(guard.timeout.timeout()):
                    await changed.wait()
        else:  # CLOSED: drains start on transitions and pushes
            guards.maybe_start_drain(guard)
            await changed.wait()


async def probe_round(guards: GuardSet, guard: PeerGuard) -> None:
    """Take every free half-open slot at once and probe the peer with each."""
    assert guards.probe_fn is not None
    breaker = guard.breaker
    now = trio.current_time()
    permits = []
    for _ in range(breaker.half_open_free_slots):
        permit = breaker.acquire(now)
        if permit is None:
            break
        permits.append(permit)
    async with trio.open_nursery() as nursery:
        for permit in permits:
            nursery.start_soon(guards.run_probe, guard, permit)


async def drain(guards: GuardSet, guard: PeerGuard) -> None:
    queue = guard.queue
    try:
        while guards.drain_allowed(guard):
            item = queue.pop()
            if item is None:
                return
            guards.report_depth(guard)
            result: CallResult | None = None
            try:
                result = await guards.send_queued(guard, item)
            finally:
                if result is None:  # abandoned: put it back as it was
                    queue.requeue(item, failed=False)
                    guards.report_depth(guard)
            if result.ok:
                continue
            rejected = result.outcome == "rejected"
            queue.requeue(item, failed=not rejected)
            guards.report_depth(guard)
            if rejected:
                return
    finally:
        guard.draining = False
