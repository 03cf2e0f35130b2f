"""GuardSet background work on Trio (autojump clock): half-open probing, backoff with
jitter, the quorum rule, and draining the fallback queue (order, stopping, cancellation).
"""

from __future__ import annotations

import random

import pytest
import trio

from node.resilience import BreakerConfig, CircuitState, FallbackConfig, TimeoutConfig
from node.shell.guard import GuardHooks, GuardSet

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class FakeLinks:
    """The injected send/probe seam. Peers in `down` fail; `ok_budget[peer]` successful
    sends before that peer starts failing; every send/probe takes `delay[peer]` seconds."""

    def __init__(self, delay: float = 0.01) -> None:
        self.down: set[str] = set()
        self.delay: dict[str, float] = {}
        self.default_delay = delay
        self.ok_budget: dict[str, int] = {}
        self.sent: list[tuple[str, bytes]] = []
        self.probes: list[tuple[str, float]] = []

    def _check(self, peer: str) -> None:
        if peer in self.down:
            raise ConnectionError(f"{peer} is down")

    async def send(self, peer: str, data: bytes) -> None:
        await trio.sleep(self.delay.get(peer, self.default_delay))
        self._check(peer)
        if peer in self.ok_budget:
            if self.ok_budget[peer] == 0:
                raise ConnectionError(f"{peer} went down")
            self.ok_budget[peer] -= 1
        self.sent.append((peer, data))

    async def probe(self, peer: str) -> float:
        self.probes.append((peer, trio.current_time()))
        await trio.sleep(self.delay.get(peer, self.default_delay))
        self._check(peer)
        return 0.0

    def sent_to(self, peer: str) -> list[bytes]:
        return [data for p, data in self.sent if p == peer]

    def probe_times(self, peer: str) -> list[float]:
        return sorted({t for p, t in self.probes if p == peer})


def make(
    links: FakeLinks,
    *,
    probe: bool = True,
    f: int = 1,
    hooks: GuardHooks | None = None,
    **breaker: object,
) -> GuardSet:
    return GuardSet(
        ["p1", "p2", "p3"],
        f,
        BreakerConfig(**breaker),
        TimeoutConfig(min_s=0.05, max_s=10.0),
        FallbackConfig(max_queue=100, max_retries=5),
        send=links.send,
        probe=links.probe if probe else None,
        rng=random.Random(42),
        hooks=hooks,
    )


class OpenLog:
    """Records (new_state, now, open_timeout_s) for one breaker."""

    def __init__(self, guards: GuardSet, peer: str) -> None:
        self.breaker = guards[peer].breaker
        self.entries: list[tuple[CircuitState, float, float]] = []
        self.breaker.subscribe(self)

    def __call__(self, _peer: str, _old: CircuitState, new: CircuitState, now: float) -> None:
        self.entries.append((new, now, self.breaker.open_timeout_s))

    def opens(self) -> list[tuple[float, float]]:
        return [(now, timeout) for new, now, timeout in self.entries if new is OPEN]


async def trip(guards: GuardSet, links: FakeLinks, peer: str) -> None:
    links.down.add(peer)
    threshold = guards.breaker_cfg.failure_threshold
    for i in range(threshold):
        await guards.send(peer, f"trip{i}".encode())
    assert guards[peer].breaker.state is OPEN


async def test_probes_close_the_circuit_after_the_open_timeout(autojump_clock) -> None:
    links = FakeLinks()
    transitions: list[tuple[str, str, str]] = []
    guards = make(links, hooks=GuardHooks(on_transition=lambda *a: transitions.append(a)))
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        await trip(guards, links, "p1")
        opened = guards["p1"].breaker.opened_at
        links.down.clear()
        await trio.sleep(29.0)
        assert links.probes == []
        await trio.sleep(2.0)
        assert links.probes == [("p1", opened + 30.0)] * 3  # half_open_max_calls at once
        assert guards["p1"].breaker.state is CLOSED
        assert transitions == [
            ("p1", "closed", "open"),
            ("p1", "open", "half_open"),
            ("p1", "half_open", "closed"),
        ]
        # the five failed sends were queued and the drain delivered them once closed
        assert links.sent_to("p1") == [f"trip{i}".encode() for i in range(5)]
        nursery.cancel_scope.cancel()


async def test_a_slow_probe_gets_the_request_timeout_not_the_adaptive_one(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(links, request_timeout_s=2.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        for i in range(20):  # a fast healthy past: the adaptive deadline shrinks to min_s
            await guards.send("p1", f"warm{i}".encode())
        assert guards["p1"].timeout.timeout() == pytest.approx(0.05)
        await trip(guards, links, "p1")
        links.down.clear()
        links.delay["p1"] = 0.5  # the returning peer answers slowly while it warms up
        await trio.sleep(31.0)
        assert guards["p1"].breaker.state is CLOSED
        # a call beyond the request timeout still fails the probe
        await trip(guards, links, "p1")
        links.down.clear()
        links.delay["p1"] = 3.0
        await trio.sleep(33.5)
        assert guards["p1"].breaker.state is OPEN
        nursery.cancel_scope.cancel()


async def test_failed_probes_back_off_with_jitter_up_to_the_cap(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(links)
    log = OpenLog(guards, "p1")
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        await trip(guards, links, "p1")
        await trio.sleep(1500.0)
        nursery.cancel_scope.cancel()
    opens = log.opens()
    probes = links.probe_times("p1")
    assert len(probes) >= 6
    for (opened, timeout), probed in zip(opens, probes, strict=False):
        assert probed == opened + timeout  # each test exactly when its open period ends
    timeouts = [timeout for _, timeout in opens]
    assert timeouts[0] == 30.0
    for level, value in enumerate(timeouts[1:], start=1):
        nominal = min(30.0 * 2**level, 300.0)
        assert nominal * 0.9 <= value <= min(nominal * 1.1, 300.0)
    assert len(set(timeouts[1:4])) == 3
    assert guards["p1"].breaker.trips == len(opens)


async def test_quorum_rule_probes_at_the_base_timeout(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(links, f=1, failure_threshold=1)
    p1 = OpenLog(guards, "p1")
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        await trip(guards, links, "p1")
        await trip(guards, links, "p2")
        assert guards.open_count() == 2 and guards.quorum_at_risk()
        await trio.sleep(200.0)
        # more than f open: every test comes 30 s after opening, whatever the backoff
        opens = p1.opens()
        probes = links.probe_times("p1")
        assert len(probes) == 6
        for (opened, _), probed in zip(opens, probes, strict=False):
            assert probed == opened + 30.0
        assert opens[-1][1] > 250.0  # the backoff itself kept growing
        # p2 recovers: back to f open circuits, p1 waits out its backoff again
        links.down.discard("p2")
        await trio.sleep(31.0)
        assert guards["p2"].breaker.state is CLOSED
        assert not guards.quorum_at_risk()
        opened, timeout = p1.opens()[-1]
        await trio.sleep(opened + timeout - trio.current_time() - 0.5)
        assert links.probe_times("p1")[-1] < opened
        await trio.sleep(1.0)
        assert links.probe_times("p1")[-1] == opened + timeout
        nursery.cancel_scope.cancel()


async def test_drain_sends_in_priority_order_once_closed(autojump_clock) -> None:
    links = FakeLinks()
    depths: list[int] = []
    hooks = GuardHooks(on_queue_change=lambda _peer, depth: depths.append(depth))
    guards = make(links, failure_threshold=2, hooks=hooks)
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        links.down.add("p1")
        for data, priority in [(b"m0", 0), (b"m1", 5), (b"m2", 1), (b"m3", 5), (b"m4", 0)]:
            assert await guards.send("p1", data, priority=priority) == "queued"
        assert guards["p1"].breaker.state is OPEN
        await trio.sleep(1.0)  # let the drain's own failed attempt (m0) settle first
        links.down.clear()
        await trio.sleep(40.0)
        assert links.sent_to("p1") == [b"m1", b"m3", b"m2", b"m0", b"m4"]
        assert len(guards["p1"].queue) == 0
        assert depths[-1] == 0 and max(depths) == 5
        nursery.cancel_scope.cancel()


async def test_drain_stops_cleanly_when_the_circuit_opens_again(autojump_clock) -> None:
    links = FakeLinks()
    links.delay["p1"] = 1.0
    guards = make(links)
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        guards.force_open("p1")
        for i in range(6):
            await guards.send("p1", f"m{i}".encode())
        guards.force_close("p1")  # the drain starts
        await trio.sleep(2.5)  # m0, m1 delivered, m2 in flight
        guards.force_open("p1")
        await trio.sleep(10.0)
        assert links.sent_to("p1") == [b"m0", b"m1", b"m2"]  # in-flight one completes
        queue = guards["p1"].queue
        assert [i.payload for i in queue.items()] == [b"m3", b"m4", b"m5"]
        assert all(i.attempts == 0 for i in queue.items())
        assert not guards["p1"].draining
        guards.force_close("p1")
        await trio.sleep(10.0)
        assert links.sent_to("p1") == [f"m{i}".encode() for i in range(6)]
        nursery.cancel_scope.cancel()


async def test_drain_stops_when_the_peer_fails_again(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(links, failure_threshold=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        guards.force_open("p1")
        for i in range(5):
            await guards.send("p1", f"m{i}".encode(), priority=10 - i)
        links.ok_budget["p1"] = 2  # two more deliveries, then the peer dies again
        guards.force_close("p1")
        await trio.sleep(5.0)
        assert links.sent_to("p1") == [b"m0", b"m1"]
        assert guards["p1"].breaker.state is OPEN
        items = guards["p1"].queue.items()
        assert [i.payload for i in items] == [b"m2", b"m3", b"m4"]
        assert [i.attempts for i in items] == [2, 0, 0]  # m2 failed twice, tripping it
        assert not guards["p1"].draining
        nursery.cancel_scope.cancel()


async def test_cancelled_drain_puts_the_item_back_untouched(autojump_clock) -> None:
    links = FakeLinks()
    links.delay["p1"] = 5.0
    guards = make(links)
    with trio.move_on_after(100.0):  # bounds the test
        async with trio.open_nursery() as nursery:
            await nursery.start(guards.run)
            guards.force_open("p1")
            await guards.send("p1", b"a", priority=1)
            await guards.send("p1", b"b", priority=0)
            guards.force_close("p1")
            await trio.sleep(1.0)
            assert len(guards["p1"].queue) == 1  # "a" in flight
            nursery.cancel_scope.cancel()
    queue = guards["p1"].queue
    assert [(i.payload, i.attempts) for i in queue.items()] == [(b"a", 0), (b"b", 0)]
    breaker = guards["p1"].breaker
    assert (breaker.total_successes, breaker.total_failures) == (0, 0)
    assert not guards["p1"].draining and links.sent == []


async def test_without_probe_queued_traffic_tests_the_peer(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(links, probe=False, failure_threshold=1, success_threshold=2)
    log = OpenLog(guards, "p1")
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        links.down.add("p1")
        for i in range(4):
            await guards.send("p1", f"m{i}".encode())
        links.down.clear()
        await trio.sleep(35.0)
        assert [new for new, *_ in log.entries] == [OPEN, HALF_OPEN, CLOSED]
        assert log.entries[1][1] == log.entries[0][1] + 30.0
        assert links.sent_to("p1") == [b"m0", b"m1", b"m2", b"m3"]
        assert links.probes == []
        nursery.cancel_scope.cancel()


async def test_run_reports_initial_values_and_runs_once(autojump_clock) -> None:
    seen: list[tuple] = []
    hooks = GuardHooks(
        on_timeout_change=lambda *a: seen.append(("timeout", *a)),
        on_queue_change=lambda *a: seen.append(("queue", *a)),
    )
    guards = make(FakeLinks(), hooks=hooks)
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        assert sorted(seen) == sorted(
            [("timeout", p, 10.0) for p in ("p1", "p2", "p3")]
            + [("queue", p, 0) for p in ("p1", "p2", "p3")]
        )
        with pytest.raises(RuntimeError, match="already running"):
            await guards.run()
        nursery.cancel_scope.cancel()


async def test_drain_rejected_in_half_open_is_restarted_later(autojump_clock) -> None:
    links = FakeLinks()
    guards = make(
        links, probe=False, failure_threshold=1, half_open_max_calls=1, success_threshold=2
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(guards.run)
        links.down.add("p1")
        for i in range(3):
            await guards.send("p1", f"m{i}".encode())
        links.down.clear()
        breaker = guards["p1"].breaker
        await trio.sleep(breaker.retry_at - trio.current_time())

        async def slow() -> None:
            await trio.sleep(5.0)

        # a live call takes the only test slot; the drain is rejected and backs off
        result = await guards.call("p1", slow)
        assert result.ok and breaker.state is HALF_OPEN
        assert links.sent == [] and len(guards["p1"].queue) == 3
        await trio.sleep(20.0)  # the probe loop restarts the drain
        assert breaker.state is CLOSED
        assert links.sent_to("p1") == [b"m0", b"m1", b"m2"]
        nursery.cancel_scope.cancel()
