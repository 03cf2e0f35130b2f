"""GuardSet call path on Trio (autojump clock): timeouts through the cancel scope, failures,
outside cancellation, exact half-open permits under concurrency, per-peer isolation,
send/queue, best peers, snapshot and hooks. Background probe/drain: test_guard_recovery.py.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest
import trio

from node.resilience import BreakerConfig, CircuitState, FallbackConfig, TimeoutConfig
from node.shell.guard import GuardHooks, GuardSet

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class FakeLinks:
    """The injected send/probe seam: peers in `down` raise, others take `delay` seconds."""

    def __init__(self, delay: float = 0.01) -> None:
        self.down: set[str] = set()
        self.delay: dict[str, float] = {}
        self.default_delay = delay
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, peer: str, data: bytes) -> None:
        await trio.sleep(self.delay.get(peer, self.default_delay))
        if peer in self.down:
            raise ConnectionError(f"{peer} is down")
        self.sent.append((peer, data))


class HookLog:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def hooks(self) -> GuardHooks:
        return GuardHooks(
            on_transition=lambda *a: self.events.append(("transition", *a)),
            on_call=lambda *a: self.events.append(("call", *a)),
            on_reject=lambda *a: self.events.append(("reject", *a)),
            on_queue_change=lambda *a: self.events.append(("queue", *a)),
            on_timeout_change=lambda *a: self.events.append(("timeout", *a)),
            on_queue_drop=lambda *a: self.events.append(("drop", *a)),
        )

    def of(self, kind: str) -> list[tuple]:
        return [e[1:] for e in self.events if e[0] == kind]


def make(
    links: FakeLinks,
    peers: tuple[str, ...] = ("p1", "p2", "p3"),
    f: int = 1,
    hooks: GuardHooks | None = None,
    **breaker: object,
) -> GuardSet:
    return GuardSet(
        list(peers),
        f,
        BreakerConfig(**breaker),
        TimeoutConfig(min_s=0.05, max_s=10.0, margin=1.5),
        FallbackConfig(max_queue=4, max_retries=3),
        send=links.send,
        probe=None,
        rng=random.Random(1),
        hooks=hooks,
    )


async def sleep_forever_op() -> None:
    await trio.sleep(1000)


async def failing_op() -> None:
    await trio.sleep(0.01)
    raise OSError("connection reset")


async def test_request_timeout_is_a_failure_via_the_cancel_scope(autojump_clock) -> None:
    log = HookLog()
    guards = make(FakeLinks(), hooks=log.hooks())
    start = trio.current_time()
    result = await guards.call("p1", sleep_forever_op)
    assert result.outcome == "timeout" and not result.ok
    assert result.latency_s == pytest.approx(10.0)  # no data yet: request_timeout_s
    assert trio.current_time() - start == pytest.approx(10.0)
    breaker = guards["p1"].breaker
    assert breaker.consecutive_failures == 1 and breaker.total_failures == 1
    assert log.of("call") == [("p1", "timeout", pytest.approx(10.0))]
    # the timed-out call's elapsed time is a lower-bound latency sample
    assert guards["p1"].timeout.percentile() == pytest.approx(10.0)


async def test_exception_is_a_failure_and_is_returned(autojump_clock) -> None:
    guards = make(FakeLinks(), failure_threshold=2)
    first = await guards.call("p1", failing_op)
    assert first.outcome == "failure" and isinstance(first.error, OSError)
    await guards.call("p1", failing_op)
    assert guards["p1"].breaker.state is OPEN
    rejected = await guards.call("p1", failing_op)
    assert rejected.outcome == "rejected"
    assert guards["p1"].breaker.total_rejected == 1


async def test_outside_cancellation_propagates_and_releases_the_permit(autojump_clock) -> None:
    guards = make(FakeLinks(), failure_threshold=1, half_open_max_calls=1)
    await guards.call("p1", failing_op)
    await trio.sleep(30.0)
    breaker = guards["p1"].breaker
    with trio.move_on_after(1.0):  # cancels the call from outside, before its own deadline
        await guards.call("p1", sleep_forever_op)
        pytest.fail("the outer cancellation must propagate")
    assert breaker.state is HALF_OPEN
    assert breaker.half_open_calls == 0  # released
    assert (breaker.total_successes, breaker.total_failures) == (0, 1)  # nothing counted
    assert (await guards.call("p1", trio.lowlevel.checkpoint)).ok


async def test_exact_half_open_permits_under_50_concurrent_tasks(autojump_clock) -> None:
    guards = make(FakeLinks(), failure_threshold=1, half_open_max_calls=3, success_threshold=3)
    await guards.call("p1", failing_op)
    await trio.sleep(30.0)
    ran = 0
    outcomes: list[str] = []

    async def probe_like() -> None:
        nonlocal ran
        ran += 1
        await trio.sleep(1.0)

    async def one() -> None:
        outcomes.append((await guards.call("p1", probe_like)).outcome)

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(one)
    assert ran == 3
    assert outcomes.count("success") == 3 and outcomes.count("rejected") == 47
    assert guards["p1"].breaker.state is CLOSED
    assert guards["p1"].breaker.total_rejected == 47


async def test_concurrent_failures_trip_exactly_once(autojump_clock) -> None:
    guards = make(FakeLinks(), failure_threshold=5)

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(guards.call, "p1", failing_op)
    breaker = guards["p1"].breaker
    assert breaker.state is OPEN
    assert breaker.trips == 1  # the 45 late failures are stale permits
    assert breaker.total_failures == 50
    assert breaker.stats(trio.current_time()).half_open_calls == 0


async def test_per_peer_circuit_breaker_isolation(autojump_clock) -> None:
    links = FakeLinks()
    links.down.add("p1")
    guards = make(links, failure_threshold=2)
    for _ in range(2):
        assert await guards.send("p1", b"x") == "queued"
        assert await guards.send("p2", b"y") == "sent"
    assert guards["p1"].breaker.state is OPEN
    assert guards["p2"].breaker.state is CLOSED
    assert guards.open_count() == 1
    assert guards.snapshot("p2") == {
        "circuit": "closed",
        "consecutive_failures": 0,
        "timeout_ms": 50.0,  # latency 10 ms * 1.5 clamped to min_s
        "queued": 0,
        "health": pytest.approx(guards["p2"].health.score(0.0), abs=1e-4),
        "trips": 0,
    }
    snap = guards.snapshot("p1")
    assert set(snap) == {
        "circuit",
        "consecutive_failures",
        "timeout_ms",
        "queued",
        "health",
        "trips",
    }
    assert (snap["circuit"], snap["consecutive_failures"], snap["queued"], snap["trips"]) == (
        "open",
        2,
        2,
        1,
    )
    assert snap["health"] == 0.0 and snap["timeout_ms"] == 10_000.0


async def test_send_queues_when_open_and_reports_drops(autojump_clock) -> None:
    log = HookLog()
    guards = make(FakeLinks(), hooks=log.hooks())
    guards.force_open("p1")
    keys: list[Hashable | None] = [None, None, "ckpt", None, "ckpt"]
    outcomes = [
        await guards.send("p1", f"m{i}".encode(), priority=1, key=k) for i, k in enumerate(keys)
    ]
    assert outcomes == ["queued"] * 5
    queue = guards["p1"].queue
    assert [i.payload for i in queue.items()] == [b"m0", b"m1", b"m3", b"m4"]
    assert all(i.attempts == 0 for i in queue.items())  # rejected, never tried
    assert await guards.send("p1", b"low", priority=0) == "dropped"
    assert log.of("drop") == [("p1", "superseded"), ("p1", "full")]
    assert log.of("reject") == [("p1",)] * 6
    assert log.of("queue")[-1] == ("p1", 4)
    assert log.of("transition") == [("p1", "closed", "open")]


async def test_failed_send_is_queued_with_one_attempt(autojump_clock) -> None:
    links = FakeLinks()
    links.down.add("p1")
    guards = make(links)
    assert await guards.send("p1", b"a", priority=2) == "queued"
    item = guards["p1"].queue.peek()
    assert item is not None and item.attempts == 1 and item.priority == 2


async def test_direct_delivery_supersedes_an_older_queued_copy(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(links, failure_threshold=3)
    links.down.add("p1")
    assert await guards.send("p1", b"ckpt@100", key="ckpt") == "queued"
    links.down.clear()
    assert await guards.send("p1", b"ckpt@200", key="ckpt") == "sent"
    assert len(guards["p1"].queue) == 0 and guards["p1"].queue.superseded == 1


async def test_adaptive_timeout_follows_latency(autojump_clock) -> None:
    log = HookLog()
    links = FakeLinks()
    links.delay["p1"] = 0.2
    guards = make(links, hooks=log.hooks())
    for _ in range(5):
        assert await guards.send("p1", b"m") == "sent"
    assert guards["p1"].timeout.timeout() == pytest.approx(0.3)
    assert guards.snapshot("p1")["timeout_ms"] == pytest.approx(300.0)
    assert log.of("timeout") == [("p1", pytest.approx(0.3))]  # reported once, on change
    assert log.of("call") == [("p1", "success", pytest.approx(0.2))] * 5


async def test_best_peers(autojump_clock) -> None:
    links = FakeLinks()
    links.delay.update({"p1": 0.01, "p2": 0.5, "p3": 0.05})
    guards = make(links, failure_threshold=1)
    for peer in ("p1", "p2", "p3"):
        await guards.send(peer, b"hello")
    assert guards.best_peers() == ["p1", "p3", "p2"]
    assert guards.best_peers(exclude={"p1"}) == ["p3", "p2"]
    links.down.add("p1")
    await guards.send("p1", b"x")  # trips p1
    assert guards.best_peers() == ["p3", "p2"]


async def test_a_bug_inside_a_guarded_call_is_logged_and_not_charged_to_the_peer(
    autojump_clock, caplog: pytest.LogCaptureFixture
) -> None:
    guards = make(FakeLinks(), failure_threshold=1)

    async def buggy() -> None:
        raise TypeError("unsupported operand")

    result = await guards.call("p1", buggy)
    assert result.outcome == "failure" and isinstance(result.error, TypeError)
    assert guards["p1"].breaker.state.value == "closed"  # a peer error would have tripped it
    assert guards["p1"].breaker.consecutive_failures == 0
    assert any("event=bug peer=p1" in r.getMessage() for r in caplog.records)

    async def reset() -> None:
        raise ConnectionResetError("reset by peer")

    result = await guards.call("p1", reset)
    assert result.outcome == "failure" and guards["p1"].breaker.state.value == "open"


async def test_evidence_lowers_rank(autojump_clock) -> None:
    guards = make(FakeLinks())
    for peer in ("p1", "p2", "p3"):
        await guards.send(peer, b"hello")
    guards.record_evidence("p1", "equivocation")
    assert guards.best_peers()[-1] == "p1"
    assert guards.snapshot("p1")["health"] == pytest.approx(
        guards.snapshot("p2")["health"] * 0.1, abs=1e-3
    )


async def test_reset_and_force_close_via_guardset(autojump_clock) -> None:
    guards = make(FakeLinks(), failure_threshold=1)
    await guards.call("p1", failing_op)
    assert guards["p1"].breaker.state is OPEN
    guards.force_close("p1")
    assert guards["p1"].breaker.state is CLOSED and guards.snapshot("p1")["trips"] == 1
    await guards.call("p1", failing_op)
    guards.reset("p1")
    snap = guards.snapshot("p1")
    assert (snap["circuit"], snap["trips"], snap["timeout_ms"]) == ("closed", 0, 10_000.0)


def test_constructor_validation() -> None:
    links = FakeLinks()
    for peers, f, fragment in [
        (["a", "a"], 1, "distinct"),
        (["a", ""], 1, "distinct"),
        (["a"], -1, "f must be"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            GuardSet(
                peers,
                f,
                BreakerConfig(),
                TimeoutConfig(),
                FallbackConfig(),
                send=links.send,
                probe=None,
                rng=random.Random(0),
            )
    guards = make(links)
    with pytest.raises(KeyError, match="unknown peer 'zz'"):
        guards.snapshot("zz")


async def test_one_way_sends_do_not_hide_a_peer_that_never_answers(autojump_clock) -> None:
    """Frames handed to a connected link are no proof of life: a peer that receives
    everything and answers no heartbeat trips its circuit however much is sent to it."""
    links = FakeLinks()
    guards = GuardSet(
        ["p1"],
        0,
        BreakerConfig(failure_threshold=3, request_timeout_s=1.0),
        TimeoutConfig(min_s=0.05, max_s=0.5),
        FallbackConfig(),
        send=links.send,
        probe=None,
        rng=random.Random(1),
        one_way_sends=True,
    )
    guard = guards["p1"]
    for _ in range(3):
        assert (await guards.send("p1", b"frame")) == "sent"
        await guards.call("p1", sleep_forever_op)  # an unanswered heartbeat: a timeout
        assert (await guards.send("p1", b"frame")) in ("sent", "queued")
    assert guard.breaker.state is OPEN
    assert guard.breaker.total_successes == 0 and guard.breaker.total_failures == 3
