"""The whole shell in one process: four replicas over memory streams, mock clock.

Requests commit and replies find their way back; degraded mode, heartbeats, probes on
reconnect and state fetch are exercised the way `bft-node run` processes run them, in
a few seconds of real time instead of through real processes.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.app.kv import decode_result, op_get, op_put
from node.client.pool import QuorumUnavailable, Refused, Session
from tests.shell.cluster import open_cluster


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Jump only after 10 ms of real idleness: storage writes and the snapshot saver run in
    # worker threads, and a jump while one runs would look like seconds of silence.
    return trio.testing.MockClock(autojump_threshold=0.01)


async def test_requests_commit_and_every_replica_executes_them(tmp_path, clock) -> None:
    async with open_cluster(tmp_path) as cluster:
        session = Session(await cluster.client())
        for i in range(5):
            assert decode_result(await session.invoke(op_put(f"k{i}", f"v{i}"), 10))[0] == "ok"
        status, value = decode_result(await session.invoke(op_get("k3"), 10))
        assert (status, value) == ("ok", b"v3")
        await cluster.until(lambda: all(cluster.status(r)["last_executed"] >= 6 for r in range(4)))
        digests = {cluster.status(r)["state_digest"] for r in range(4)}
        assert len(digests) == 1


def circuits(cluster, rid: int) -> dict[str, str]:
    return {peer: s["circuit"] for peer, s in cluster.status(rid)["peers"].items()}


def sample(replica, name: str, **labels: str) -> float:
    value = replica.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_a_session_that_wrote_to_the_primary_only_is_answered_without_a_retry(
    tmp_path, clock
) -> None:
    async with open_cluster(tmp_path) as cluster:
        pool = await cluster.client()
        session = Session(pool)
        await session.invoke(op_put("warm", "up"), 10)
        for i in range(3):
            began = trio.current_time()
            await session.invoke(op_put(f"k{i}", "v"), 10)
            # f + 1 matching replies arrived before the retransmission timer: the backups
            # answered a session they never heard from on its principal's connection
            assert trio.current_time() - began < pool.retry_s


async def test_a_dead_peer_opens_its_circuit_by_heartbeats_and_a_probe_closes_it(
    tmp_path, clock
) -> None:
    async with open_cluster(tmp_path) as cluster:
        await cluster.kill(3)
        # no client traffic at all: the heartbeats alone find the dead peer
        await cluster.until(lambda: all(circuits(cluster, r)["3"] == "open" for r in range(3)))
        await trio.sleep(10)  # the open timeout backs off meanwhile
        await cluster.revive(3)
        revived = trio.current_time()
        await cluster.until(lambda: all(circuits(cluster, r)["3"] == "closed" for r in range(3)))
        # closed by the probe on reconnect, well before the backed-off open timeout
        assert trio.current_time() - revived < cluster.cfg.section("breaker")["max_open_timeout_s"]


async def test_degraded_mode_refuses_clients_at_once_and_ends_when_peers_return(
    tmp_path, clock
) -> None:
    async with open_cluster(tmp_path) as cluster:
        session = Session(await cluster.client())
        await session.invoke(op_put("before", "1"), 10)
        await cluster.kill(1)
        await cluster.kill(2)
        await cluster.until(lambda: cluster.status(0)["degraded"] and cluster.status(3)["degraded"])
        with pytest.raises((Refused, QuorumUnavailable)):
            await session.invoke(op_put("during", "2"), 5)
        assert sample(cluster.replicas[0], "bft_client_refused_total", reason="degraded") >= 1
        await cluster.revive(1)
        await cluster.revive(2)
        await cluster.until(lambda: not any(cluster.status(r)["degraded"] for r in range(4)))
        assert decode_result(await session.invoke(op_put("after", "3"), 10))[0] == "ok"


async def test_a_replica_that_missed_checkpoints_fetches_the_state_and_catches_up(
    tmp_path, clock
) -> None:
    # a short fallback queue: what the peers held for it is not enough to catch up
    async with open_cluster(tmp_path, fallback={"max_queue": 10}) as cluster:
        session = Session(await cluster.client())
        await cluster.kill(3)
        await cluster.until(lambda: all(circuits(cluster, r)["3"] == "open" for r in range(3)))
        for i in range(60):  # three checkpoint intervals: the log it missed is gone
            await session.invoke(op_put(f"k{i % 7}", f"v{i}"), 10)
        top = cluster.status(0)["last_executed"]
        assert cluster.status(0)["stable_checkpoint"] >= 40
        replica = await cluster.revive(3)
        await cluster.until(lambda: cluster.status(3)["last_executed"] >= top)
        assert sample(replica, "bft_state_transfers_total") >= 1
        assert cluster.status(3)["state_digest"] == cluster.status(0)["state_digest"]


async def test_a_partitioned_replica_is_cut_off_and_rejoins_when_the_link_heals(
    tmp_path, clock
) -> None:
    async with open_cluster(tmp_path) as cluster:
        session = Session(await cluster.client())
        for peer in ("0", "1", "2", "client"):
            cluster.net.cut("3", peer)
        await cluster.until(lambda: all(circuits(cluster, r)["3"] == "open" for r in range(3)))
        for i in range(30):
            await session.invoke(op_put(f"p{i}", "v"), 10)
        for peer in ("0", "1", "2", "client"):
            cluster.net.heal("3", peer)
        top = cluster.status(0)["last_executed"]
        await cluster.until(lambda: cluster.status(3)["last_executed"] >= top)
        await cluster.until(lambda: all(circuits(cluster, r)["3"] == "closed" for r in range(3)))
