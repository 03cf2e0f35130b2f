"""The public Trio client (``node.client.connect``) against the in-process cluster: real
replicas, storage and client pool over the memory network, under the mock clock."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import node.client as client
from node.client import InvalidRequest, QuorumUnavailable, Refused, RequestTimeout
from node.client.api import KV
from tests.shell.cluster import MemoryCluster, open_cluster


def kv_of(cluster: MemoryCluster, **options):
    return client.connect(cluster.cfg, network=cluster.net, **options)


async def test_every_operation_round_trips(tmp_path: Path, autojump_clock) -> None:
    async with open_cluster(tmp_path) as cluster, kv_of(cluster) as kv:
        assert await kv.get("k") is None
        await kv.put("k", "v1")
        assert await kv.get("k") == b"v1"
        await kv.put(b"\x00bin", b"\xff\xfe")
        assert await kv.get(b"\x00bin") == b"\xff\xfe"
        assert await kv.cas("k", "other", "x") is False
        assert await kv.get("k") == b"v1"
        assert await kv.cas("k", "v1", "v2") is True
        assert await kv.get("k") == b"v2"
        assert await kv.cas("new", None, "made") is True  # None: only if absent
        assert await kv.cas("new", None, "again") is False
        assert await kv.delete("k") is True
        assert await kv.delete("k") is False
        assert await kv.get("k") is None


async def test_text_mode_returns_str(tmp_path: Path, autojump_clock) -> None:
    async with open_cluster(tmp_path) as cluster, kv_of(cluster, text=True) as kv:
        await kv.put("name", "Zoë")
        assert await kv.get("name") == "Zoë"
        await kv.put("raw", b"\xff")
        with pytest.raises(client.ClientError, match="not UTF-8"):
            await kv.get("raw")


async def test_concurrent_puts_from_many_tasks_share_one_pool(
    tmp_path: Path, autojump_clock
) -> None:
    async with open_cluster(tmp_path) as cluster, kv_of(cluster) as kv:
        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(kv.put, f"key-{i}", f"value-{i}")
        assert len(kv._idle) <= 60  # one session per concurrent call, reused after
        for i in range(60):
            assert await kv.get(f"key-{i}") == f"value-{i}".encode()
        assert len(cluster.replicas[0].core.app) >= 60  # type: ignore[attr-defined]


async def _race(contenders: dict[str, KV], rnd: int, current: bytes | None) -> list[str]:
    won: list[str] = []

    async def attempt(name: str, kv: KV) -> None:
        if await kv.cas("counter", current, f"{name}-{rnd}"):
            won.append(name)

    async with trio.open_nursery() as nursery:
        for name, kv in contenders.items():
            nursery.start_soon(attempt, name, kv)
    return won


async def test_cas_race_has_exactly_one_winner_per_round(tmp_path: Path, autojump_clock) -> None:
    async with open_cluster(tmp_path) as cluster:
        async with kv_of(cluster) as a, kv_of(cluster) as b, kv_of(cluster) as c:
            current: bytes | None = None
            for rnd in range(8):
                won = await _race({"a": a, "b": b, "c": c}, rnd, current)
                assert len(won) == 1, won
                current = await a.get("counter")
                assert current == f"{won[0]}-{rnd}".encode()


async def test_calls_during_a_primary_kill_finish_or_raise_typed_errors(
    tmp_path: Path, autojump_clock
) -> None:
    outcomes: list[str] = []
    deadline = 6.0
    async with open_cluster(tmp_path) as cluster, kv_of(cluster, timeout=deadline) as kv:

        async def writer(i: int) -> None:
            for j in range(15):
                started = trio.current_time()
                try:
                    await kv.put(f"w{i}-{j}", "x")
                    outcomes.append("ok")
                except (RequestTimeout, Refused):
                    outcomes.append("error")
                # nothing waits past its deadline (plus a scheduling hair)
                assert trio.current_time() - started <= deadline + 0.1
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(writer, i)
            await trio.sleep(0.3)
            await cluster.kill(0)  # the primary of view 0
        assert len(outcomes) == 8 * 15
        assert outcomes.count("ok") >= 8 * 15 - 8  # at most the calls in flight at the kill
        assert await kv.get("w0-14") == b"x"


async def test_a_call_without_a_quorum_raises_request_timeout_at_its_deadline(
    tmp_path: Path, autojump_clock
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = MemoryCluster(tmp_path, nursery, 4)
        await cluster.start(1)  # one replica of four: no quorum, no f+1 replies
        async with kv_of(cluster) as kv:
            started = trio.current_time()
            with pytest.raises(RequestTimeout, match="matching replies within 3s"):
                await kv.put("k", "v", timeout=3.0)
            assert 3.0 <= trio.current_time() - started < 3.2
            # a cancel scope bounds a call as well; the default deadline (30 s) is longer
            with trio.move_on_after(2.0) as scope:
                await kv.get("k")
            assert scope.cancelled_caught
        nursery.cancel_scope.cancel()


async def test_limits_are_checked_before_sending(tmp_path: Path, autojump_clock) -> None:
    async with open_cluster(tmp_path) as cluster, kv_of(cluster) as kv:
        await kv.put("big", b"v" * kv.max_value)  # exactly at the limit: it commits
        assert await kv.get("big") == b"v" * kv.max_value
        await kv.put("k" * kv.max_key, b"v" * kv.max_value)  # whatever the key
        with pytest.raises(InvalidRequest, match=f"value is {kv.max_value + 1} bytes"):
            await kv.put("k", b"v" * (kv.max_value + 1))
        with pytest.raises(InvalidRequest, match="key is 4097 bytes; the limit is 4096"):
            await kv.put("k" * 4097, "v")
        with pytest.raises(InvalidRequest, match="must be str or bytes, not int"):
            await kv.put("k", 5)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest, match="do not fit"):
            await kv.cas("k", b"e" * kv.max_value, b"n" * kv.max_value)
        assert isinstance(InvalidRequest("x"), ValueError)  # callers may catch either


async def test_errors_from_the_block_leave_connect_unwrapped(
    tmp_path: Path, autojump_clock
) -> None:
    async with open_cluster(tmp_path) as cluster:
        with pytest.raises(KeyError):
            async with kv_of(cluster):
                raise KeyError("mine")
        with pytest.raises(QuorumUnavailable):
            async with kv_of(cluster):
                raise QuorumUnavailable("quorum unavailable")
