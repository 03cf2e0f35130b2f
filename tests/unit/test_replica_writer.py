"""The replica's writer: a round's actions wait for its records and for every earlier
round; the event loop keeps running meanwhile, and waiting rounds share one transaction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import trio

import node.replica as replica_module
from node.config import init_cluster, load_config, load_private_key
from node.consensus.events import Persist, StartTimer
from node.replica import Replica


@pytest.fixture
def replica(tmp_path: Path) -> Replica:
    path = init_cluster(tmp_path / "cluster", base_port=17000, http_base_port=17100)
    cfg = load_config(path)
    return Replica(cfg, 0, load_private_key(cfg.replica_key_path(0)), tmp_path / "data")


class GatedWrites:
    """Stands in for `write_round`: records each call and blocks it until released."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []
        self.gates: list[threading.Event] = []

    def __call__(self, storage: Any, records: list[Any]) -> None:
        gate = threading.Event()
        self.gates.append(gate)
        self.calls.append(list(records))
        assert gate.wait(10)


async def until(predicate: Any) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.001)


async def test_actions_wait_for_their_write_and_later_rounds_are_grouped(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = GatedWrites()
    monkeypatch.setattr(replica_module, "write_round", writes)
    performed: list[Any] = []
    monkeypatch.setattr(replica, "_perform", lambda actions: performed.extend(actions))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(replica._writer)
        await replica._apply(["no records, nothing waiting"])
        assert performed == ["no records, nothing waiting"]  # at once

        await replica._apply([Persist(("r1",)), "send 1", StartTimer("batch", 5.0)])
        await until(lambda: writes.calls == [["r1"]])
        assert "batch" in replica._timers  # timers do not wait for the disk
        await replica._apply(["send 2 (no records, but after round 1)"])
        await replica._apply([Persist(("r3a", "r3b")), "send 3"])
        await trio.sleep(0.05)  # the event loop runs while round 1 is on disk
        assert performed == ["no records, nothing waiting"]

        writes.gates[0].set()
        await until(lambda: len(writes.calls) == 2)
        assert performed[1:] == ["send 1"]
        assert writes.calls[1] == ["r3a", "r3b"]  # rounds 2 and 3 in one transaction
        writes.gates[1].set()
        await until(lambda: len(performed) == 4)
        assert performed[1:] == ["send 1", "send 2 (no records, but after round 1)", "send 3"]
        assert replica.writes == 2
        nursery.cancel_scope.cancel()


async def test_the_core_loop_waits_when_too_many_rounds_wait_for_the_disk(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = GatedWrites()
    monkeypatch.setattr(replica_module, "write_round", writes)
    monkeypatch.setattr(replica_module, "MAX_ROUNDS_AHEAD", 3)
    monkeypatch.setattr(replica, "_perform", lambda actions: None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(replica._writer)
        await replica._apply([Persist(("first",))])
        await until(lambda: len(writes.calls) == 1)
        for i in range(3):
            await replica._apply([Persist((i,))])
        blocked = trio.Event()

        async def fourth() -> None:
            await replica._apply([Persist(("fourth",))])
            blocked.set()

        nursery.start_soon(fourth)
        await trio.sleep(0.05)
        assert not blocked.is_set() and len(replica._unwritten) == 3
        writes.gates[0].set()
        await until(blocked.is_set)
        await until(lambda: len(writes.calls) == 2)
        writes.gates[1].set()
        await until(lambda: len(writes.calls) == 3)
        assert writes.calls[1] == [0, 1, 2] and writes.calls[2] == ["fourth"]
        writes.gates[2].set()
        nursery.cancel_scope.cancel()
