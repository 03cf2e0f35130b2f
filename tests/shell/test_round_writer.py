"""The round writer (`node/shell/round_writer.py`), driven through the core loop's `apply`: a
round's outbox waits for its records and for every earlier round, and waiting rounds
share one transaction; log records are written on the event loop, a snapshot in a worker
thread while the loop runs on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import node.shell.round_writer as writer_module
from node.config import init_cluster, load_config, load_private_key
from node.consensus.events import Persist, Send, StartTimer
from node.consensus.records import StableRecord
from node.shell.core_loop import CoreLoop, Inbox
from node.shell.replica import Replica
from node.shell.round_writer import Durable, RoundWriter


class Harness:
    """A replica's core and storage with a writer whose performed sends are recorded."""

    def __init__(self, replica: Replica) -> None:
        self.performed: list[Any] = []
        self.writer = RoundWriter(replica.storage, self.perform)
        self.loop = CoreLoop(replica.core, self.writer, Inbox())

    def perform(self, durable: Durable) -> None:
        assert type(durable) is Durable
        self.performed.extend(m.msg for m in durable.outbox.messages)

    async def apply(self, *actions: Any) -> None:
        await self.loop.apply(list(actions))


def send(text: str) -> Send:
    return Send(1, text)  # type: ignore[arg-type]  # the writer never looks inside


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    path = init_cluster(tmp_path / "cluster", base_port=17000, http_base_port=17100)
    cfg = load_config(path)
    replica = Replica(cfg, 0, load_private_key(cfg.replica_key_path(0)), tmp_path / "data")
    return Harness(replica)


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


def unsaved_stable(seq: int) -> StableRecord:
    """A stable checkpoint whose snapshot is not in the snapshot store: a thread write."""
    return StableRecord(seq, bytes([seq]) * 32, b"snapshot")


async def test_log_writes_run_inline_in_order_and_grouped(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[Any], bool]] = []
    main = threading.get_ident()
    monkeypatch.setattr(
        writer_module,
        "write_round",
        lambda storage, records: calls.append((list(records), threading.get_ident() == main)),
    )
    performed = h.performed
    async with trio.open_nursery() as nursery:
        await nursery.start(h.writer.run)
        await h.apply(send("no records, nothing waiting"))
        assert performed == ["no records, nothing waiting"]  # at once
        await h.apply(Persist(("r1",)), send("send 1"), StartTimer("batch", 5.0))
        await h.apply(send("send 2 (no records, but after round 1)"))
        await h.apply(Persist(("r3",)), send("send 3"))
        assert "batch" in h.loop.timers  # timers do not wait for the disk
        assert performed == ["no records, nothing waiting"] and calls == []
        await trio.testing.wait_all_tasks_blocked()
        assert calls == [(["r1", "r3"], True)]  # one transaction, on the event loop
        assert performed[1:] == ["send 1", "send 2 (no records, but after round 1)", "send 3"]
        assert h.writer.writes == 1
        nursery.cancel_scope.cancel()


async def test_a_snapshot_write_goes_to_a_thread_while_the_loop_runs_on(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = GatedWrites()
    monkeypatch.setattr(writer_module, "write_round", writes)
    performed = h.performed
    async with trio.open_nursery() as nursery:
        await nursery.start(h.writer.run)
        await h.apply(Persist((unsaved_stable(1),)), send("send 1"))
        await until(lambda: len(writes.calls) == 1)
        await h.apply(send("send 2 (no records, but after round 1)"))
        await h.apply(Persist((unsaved_stable(3),)), send("send 3"))
        await trio.testing.wait_all_tasks_blocked()  # the loop runs while round 1 is on disk
        assert performed == []
        writes.gates[0].set()
        await until(lambda: len(writes.calls) == 2)
        assert performed == ["send 1"]
        assert writes.calls[1] == [unsaved_stable(3)]
        writes.gates[1].set()
        await until(lambda: len(performed) == 3)
        assert performed == ["send 1", "send 2 (no records, but after round 1)", "send 3"]
        nursery.cancel_scope.cancel()


async def test_the_core_loop_waits_when_too_many_rounds_wait_for_the_disk(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = GatedWrites()
    monkeypatch.setattr(writer_module, "write_round", writes)
    monkeypatch.setattr(writer_module, "MAX_ROUNDS_AHEAD", 3)
    async with trio.open_nursery() as nursery:
        await nursery.start(h.writer.run)
        await h.apply(Persist((unsaved_stable(100),)))
        await until(lambda: len(writes.calls) == 1)
        for i in range(3):
            await h.apply(Persist((unsaved_stable(i),)))
        blocked = trio.Event()

        async def fourth() -> None:
            await h.apply(Persist((unsaved_stable(4),)))
            blocked.set()

        nursery.start_soon(fourth)
        await trio.testing.wait_all_tasks_blocked()
        assert not blocked.is_set() and len(h.writer.unwritten) == 3
        writes.gates[0].set()
        await until(blocked.is_set)
        await until(lambda: len(writes.calls) == 2)
        writes.gates[1].set()
        await until(lambda: len(writes.calls) == 3)
        assert writes.calls[1] == [unsaved_stable(i) for i in range(3)]
        assert writes.calls[2] == [unsaved_stable(4)]
        writes.gates[2].set()
        nursery.cancel_scope.cancel()
