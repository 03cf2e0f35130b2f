"""Self-tests of the simulator's own pieces: scheduler, network model, trace, params."""

from __future__ import annotations

import random

import attrs

from .network import NetworkModel, NetworkParams
from .params import ScheduleParams
from .scheduler import EventQueue
from .trace import Trace, describe


def drain(q: EventQueue) -> list[tuple[float, str]]:
    out = []
    while (e := q.pop()) is not None:
        out.append((e.due, e.payload))
    return out


def test_queue_orders_by_time_and_is_deterministic() -> None:
    def run(seed: int) -> list[tuple[float, str]]:
        q = EventQueue(random.Random(seed))
        for i in range(20):
            q.schedule(float(i % 3), f"e{i}")
        return drain(q)

    a, b = run(1), run(1)
    assert a == b
    assert [t for t, _ in a] == sorted(t for t, _ in a)
    # Same-time events are shuffled by the tiebreak: some seed orders them differently.
    orders = {tuple(p for _, p in run(s)) for s in range(10)}
    assert len(orders) > 1


def test_queue_clock_advances_and_cancel_skips() -> None:
    q = EventQueue(random.Random(0))
    first = q.schedule(1.0, "a")
    q.schedule(2.0, "b")
    first.cancelled = True
    entry = q.pop()
    assert entry is not None and entry.payload == "b" and q.now == 2.0
    q.schedule(0.5, "c")
    assert q.peek_time() == 2.5
    assert q.pop().payload == "c" and q.pop() is None


def test_network_drops_duplicates_then_stabilises() -> None:
    net = NetworkModel(random.Random(3), NetworkParams(drop_p=0.5, dup_p=0.5))
    fates = [len(net.route(0, 1)) for _ in range(400)]
    assert 0 in fates and 1 in fates and 2 in fates
    net.stabilise()
    fates = [len(net.route(0, 1)) for _ in range(400)]
    assert 0 not in fates
    delays = [d for _ in range(100) for d in net.route(0, 1)]
    assert max(delays) <= net.params.max_delay_s


def test_partition_cuts_replicas_not_clients() -> None:
    net = NetworkModel(random.Random(0), NetworkParams())
    net.partition([(0, 1), (2, 3)])
    assert net.route(0, 2) == [] and net.route(0, 1) != []
    assert net.route("client/a", 3) != []
    net.heal()
    assert net.route(0, 2) != []
    net.stabilise()
    net.partition([(0,), (1, 2, 3)])
    assert net.route(0, 2) != []


def test_trace_keeps_the_last_lines() -> None:
    @attrs.frozen
    class Prepare:
        view: int
        seq: int
        digest: bytes
        replica: int

    trace = Trace(keep=3)
    for i in range(5):
        trace.add(float(i), "deliver", 0, 1, Prepare(0, i, b"\xab\xcd\xef\x01", 0))
    text = trace.render()
    assert "2 earlier events" in text
    assert "Prepare(v=0 seq=4 r=0 d=abcdef)" in text
    assert describe(None) == "-"


def test_params_come_from_the_seed_alone() -> None:
    a = ScheduleParams.from_seed(42, 7)
    assert a == ScheduleParams.from_seed(42, 7)
    assert a != ScheduleParams.from_seed(43, 7)
    kinds = {k for s in range(300) for k in ScheduleParams.from_seed(s, 4).byzantine.values()}
    assert len(kinds) >= 8
    for s in range(100):
        p = ScheduleParams.from_seed(s, 7)
        assert len(p.byzantine) <= p.f
        assert all(c.replica not in p.byzantine for c in p.crashes)
