"""Real `bft-node run` processes on 127.0.0.1: agreement, crash of a backup and of the
primary under load, a full-cluster kill -9, and the load command."""

from __future__ import annotations

import sys

import pytest
import trio

from node.app.kv import decode_result, op_get, op_put
from node.client.load import run_load
from node.client.pool import ClientPool, Session
from tests.integration.harness import metric, parse_json_line, status, wait_for

pytestmark = pytest.mark.slow


async def _digests(cluster, ids):
    out = {}
    for rid in ids:
        st = await status(cluster, rid)
        if st is None:
            return None
        out[rid] = (st["last_executed"], st["state_digest"])
    return out


async def _agree(cluster, ids):
    got = await _digests(cluster, ids)
    if got and len(set(got.values())) == 1 and next(iter(got.values()))[0] > 0:
        return got
    return None


async def test_200_puts_then_all_replicas_agree(cluster):
    cfg = cluster.cfg
    pool = ClientPool(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.wait_connected(4)
        sessions = [Session(pool) for _ in range(8)]

        async def writer(i: int) -> None:
            for k in range(25):
                result = await sessions[i].invoke(op_put(f"k{i}-{k}", f"v{k}"), timeout_s=20)
                assert decode_result(result) == ("ok", None)

        async with trio.open_nursery() as writers:
            for i in range(8):
                writers.start_soon(writer, i)
        value = await sessions[0].invoke(op_get("k3-24"), timeout_s=20)
        assert decode_result(value) == ("ok", b"v24")
        nursery.cancel_scope.cancel()
    agreed = await wait_for(lambda: _agree(cluster, range(4)), 15, "equal digests")
    assert next(iter(agreed.values()))[0] >= 1


async def _load_in_background(cfg, duration, results, timeline):
    results.append(await run_load(cfg, 8, duration, request_timeout_s=5.0, timeline=timeline))


def _ops_between(timeline, t0, t1):
    return sum(1 for t, _lat in timeline if t0 <= t < t1)


async def test_killed_backup_opens_circuits_then_catches_up(cluster):
    cfg = cluster.cfg
    results, timeline = [], []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_load_in_background, cfg, 14.0, results, timeline)
        await trio.sleep(2.0)
        await cluster.kill(3)
        killed_at = trio.current_time()

        async def opened():
            st = await status(cluster, 0)
            return st and st["peers"]["3"]["circuit"] == "open"

        await wait_for(opened, 10, "replica 0 to open its circuit to replica 3")
        assert await metric(cluster, 0, "circuit_breaker_state", 'peer="3"') == 1.0
        await trio.sleep(3.0)
        assert _ops_between(timeline, killed_at + 1.0, trio.current_time()) > 0, (
            "load stopped while a backup was down"
        )
        await cluster.revive(3)
        await cluster.wait_healthy(20, [3])

        async def closed_and_drained():
            st = await status(cluster, 0)
            return (
                st and st["peers"]["3"]["circuit"] == "closed" and st["peers"]["3"]["queued"] == 0
            )

        await wait_for(closed_and_drained, 20, "circuit to 3 closed and its queue drained")
    assert results and results[0]["ops"] > 0

    async def caught_up():
        s0, s3 = await status(cluster, 0), await status(cluster, 3)
        return s0 and s3 and s3["last_executed"] >= s0["stable_checkpoint"] > 0

    await wait_for(caught_up, 20, "replica 3 to catch up to the stable checkpoint")
    assert await metric(cluster, 3, "bft_state_transfers_total") >= 1
    await wait_for(lambda: _agree(cluster, range(4)), 20, "all four to agree after catch-up")


async def test_killed_primary_causes_view_change_and_load_continues(cluster):
    cfg = cluster.cfg
    results, timeline = [], []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_load_in_background, cfg, 12.0, results, timeline)
        await trio.sleep(2.0)
        assert (await status(cluster, 1))["primary"] == 0
        await cluster.kill(0)
        killed_at = trio.current_time()

        async def new_view():
            st = await status(cluster, 1)
            return st and st["view"] >= 1 and not st["in_view_change"]

        await wait_for(new_view, 15, "a view change on replica 1")
        assert await metric(cluster, 1, "bft_view") >= 1
        assert await metric(cluster, 1, "bft_view_changes_total") >= 1
    assert _ops_between(timeline, killed_at + 0.1, killed_at + 100) > 0, "no commits after"
    await wait_for(lambda: _agree(cluster, [1, 2, 3]), 15, "the three live replicas to agree")


async def test_kill_all_and_restart_keeps_every_acknowledged_write(cluster):
    cfg = cluster.cfg
    acknowledged = {}
    pool = ClientPool(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.wait_connected(4)
        session = Session(pool)
        for k in range(60):
            await session.invoke(op_put(f"durable-{k}", f"value-{k}"), timeout_s=20)
            acknowledged[f"durable-{k}"] = f"value-{k}"
        nursery.cancel_scope.cancel()
    for rid in range(4):
        await cluster.kill(rid)
    for rid in range(4):
        await cluster.revive(rid)
    await cluster.wait_healthy(30)
    pool = ClientPool(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.wait_connected(4)
        session = Session(pool)
        for key, value in acknowledged.items():
            result = await session.invoke(op_get(key), timeout_s=30)
            assert decode_result(result) == ("ok", value.encode()), key
        nursery.cancel_scope.cancel()


async def test_load_command_prints_its_json(cluster):
    proc = await trio.run_process(
        [
            sys.executable,
            "-m",
            "node",
            "load",
            "--config",
            str(cluster.cfg.path),
            "--clients",
            "4",
            "--duration",
            "3",
            "--json",
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    summary = parse_json_line(out)
    for key in ("ops_per_s", "p50_ms", "p90_ms", "p99_ms", "errors", "clients", "duration_s"):
        assert key in summary
    assert summary["ops_per_s"] > 0 and summary["clients"] == 4
    assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["p999_ms"]
    assert summary["rate"] is None and summary["read_ratio"] == 0.0
    # the four replicas are local: their CPU and the client's, per committed operation
    assert summary["cpu_replicas"] == 4 and 0 < summary["cpu_us_per_op"] < 1e6


async def test_load_command_open_loop_with_reads(cluster):
    cmd = [sys.executable, "-m", "node", "load", "--config", str(cluster.cfg.path)]
    cmd += ["--clients", "8", "--duration", "3", "--rate", "40", "--read-ratio", "0.5"]
    proc = await trio.run_process(
        [*cmd, "--json"], capture_stdout=True, capture_stderr=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    summary = parse_json_line(proc.stdout.decode())
    assert summary["rate"] == 40.0 and summary["read_ratio"] == 0.5
    # the schedule has 120 arrivals; a cluster this idle keeps up with all of them
    assert 100 <= summary["ops"] <= 120 and summary["errors"] == 0
    assert 0.3 * summary["ops"] < summary["reads"] < 0.7 * summary["ops"]
    assert "open loop at 40/s" in proc.stdout.decode()


async def test_sigstopped_backup_trips_circuits_and_returns_after_sigcont(cluster):
    """A stopped process still completes TCP handshakes but answers nothing: keepalive
    and heartbeats must see it, open the circuits, and close them once it resumes."""
    import os
    import signal

    pid = cluster.replicas[2].pid
    os.kill(pid, signal.SIGSTOP)
    try:

        async def opened_everywhere():
            sts = [await status(cluster, i) for i in (0, 1, 3)]
            return all(st and st["peers"]["2"]["circuit"] == "open" for st in sts)

        await wait_for(opened_everywhere, 15, "circuits to the stopped replica to open")
        # the other three still commit
        summary = await run_load(cluster.cfg, 2, 2.0, request_timeout_s=5.0)
        assert summary["ops"] > 0
    finally:
        os.kill(pid, signal.SIGCONT)

    async def closed_everywhere():
        sts = [await status(cluster, i) for i in (0, 1, 3)]
        return all(st and st["peers"]["2"]["circuit"] == "closed" for st in sts)

    await wait_for(closed_everywhere, 20, "circuits to the resumed replica to close")
