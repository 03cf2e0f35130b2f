"""Reads through the client pool (`Session.query`): answered read-only by 2f+1 matching
replicas, with nothing ordered; a lying replica cannot make a wrong value win; replies
that cannot reach 2f+1 end the read early, and the session then orders the get."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.app.kv import decode_result, op_get, op_put
from node.client.pool import ClientError, ClientPool, Session, _Pending
from node.protocol.messages import Reply
from tests.shell.cluster import open_cluster


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.01)


def executed(cluster) -> list[int]:
    return [cluster.status(r)["last_executed"] for r in sorted(cluster.replicas)]


async def test_a_get_is_answered_without_being_ordered(tmp_path, clock) -> None:
    async with open_cluster(tmp_path) as cluster:
        session = Session(await cluster.client())
        await session.invoke(op_put("k", "v1"), 10)
        await cluster.until(lambda: executed(cluster) == [1, 1, 1, 1])
        assert decode_result(await session.query(op_get("k"), 10)) == ("ok", b"v1")
        assert decode_result(await session.query(op_get("nope"), 10)) == ("absent", None)
        assert executed(cluster) == [1, 1, 1, 1]  # no read was ordered
        await cluster.kill(3)  # 2f+1 replicas are still enough
        assert decode_result(await session.query(op_get("k"), 10)) == ("ok", b"v1")
        assert executed(cluster)[:3] == [1, 1, 1]


async def test_one_lying_replica_cannot_make_its_value_win(tmp_path, clock) -> None:
    async with open_cluster(tmp_path) as cluster:
        session = Session(await cluster.client())
        await session.invoke(op_put("k", "true"), 10)
        await cluster.until(lambda: executed(cluster) == [1, 1, 1, 1])
        cluster.replicas[3].core._exec.app._data[b"k"] = b"lie"  # a Byzantine state
        for _ in range(5):
            assert decode_result(await session.query(op_get("k"), 10)) == ("ok", b"true")


async def test_a_read_that_is_not_decided_is_ordered(tmp_path, clock, monkeypatch) -> None:
    async with open_cluster(tmp_path) as cluster:
        pool = await cluster.client()
        session = Session(pool)
        await session.invoke(op_put("k", "v"), 10)

        async def undecided(*args: object) -> None:
            return None  # as if the replicas' answers differed

        monkeypatch.setattr(pool, "read", undecided)
        assert decode_result(await session.query(op_get("k"), 10)) == ("ok", b"v")
        await cluster.until(lambda: executed(cluster) == [2, 2, 2, 2])  # the get was ordered


def test_replies_that_cannot_reach_the_quorum_end_a_read_early() -> None:
    pool = ClientPool.__new__(ClientPool)
    pool.n, pool.f, pool.view = 4, 1, 0
    pending = _Pending(read_only=True)
    pool._pending = {("client/s", 1): pending}
    for rid, result in ((0, b"a"), (1, b"b"), (2, b"a")):
        pool._on_reply(rid, Reply(0, 1, "client/s", rid, result))
        assert not pending.done  # "a" can still reach 3 with replica 3
    pool._on_reply(3, Reply(0, 1, "client/s", 3, b"b"))
    assert pending.done and pending.result is None


def test_an_ordered_request_keeps_waiting_on_differing_replies() -> None:
    pool = ClientPool.__new__(ClientPool)
    pool.n, pool.f, pool.view = 4, 1, 0
    pending = _Pending(read_only=False)
    pool._pending = {("client/s", 1): pending}
    for rid, result in enumerate((b"a", b"b", b"c")):
        pool._on_reply(rid, Reply(0, 1, "client/s", rid, result))
    assert not pending.done  # it retransmits instead; f+1 matching will come


async def test_gets_and_puts_stay_linearizable_through_a_backup_and_a_primary_kill(
    tmp_path, clock
) -> None:
    """Writers put increasing numbers; every read (read-only, or ordered after all) must
    return at least the newest number whose put had completed before the read began, and
    at most the newest whose put had begun before the read ended (a call that times out is
    only recorded: this test is about values, not liveness)."""
    keys = ("a", "b")
    started = {k: 0 for k in keys}  # newest value whose put has begun
    completed = {k: 0 for k in keys}  # newest value whose put has completed
    problems, stalls = [], []  # wrong values; calls that timed out
    reads = 0

    async def writer(session: Session, key: str, stop: trio.Event) -> None:
        value = 0
        while not stop.is_set():
            value += 1
            started[key] = value
            try:
                await session.invoke(op_put(key, str(value)), 10)
            except ClientError:  # not completed: it may still take effect, within bounds
                stalls.append(f"put {key}={value}")
                continue
            completed[key] = max(completed[key], value)

    async def reader(session: Session, stop: trio.Event) -> None:
        nonlocal reads
        while not stop.is_set():
            for key in keys:
                low = completed[key]
                try:
                    result = await session.query(op_get(key), 10)
                except ClientError:
                    stalls.append(f"get {key}")
                    continue
                status, value = decode_result(result)
                got = int(value) if status == "ok" and value is not None else 0
                if not low <= got <= started[key]:
                    problems.append(f"{key}: read {got}, not in [{low}, {started[key]}]")
                reads += 1

    clock.rate = 1.0  # closed loops never idle: virtual time passes with real time
    async with open_cluster(tmp_path) as cluster:
        pool = await cluster.client()
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(writer, Session(pool), key, stop)
            for _ in range(3):
                nursery.start_soon(reader, Session(pool), stop)
            await trio.sleep(1)
            await cluster.kill(2)  # a backup
            await trio.sleep(2)
            await cluster.revive(2)
            await trio.sleep(2)
            await cluster.kill(0)  # the primary of view 0: the others change view
            await trio.sleep(5)
            stop.set()
        assert max(cluster.status(r)["view"] for r in (1, 2, 3)) >= 1
    assert problems == [] and reads > 100 and min(completed.values()) > 10, stalls
