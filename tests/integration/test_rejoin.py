"""Every replica comes back, on real processes with the demo's settings: a kill loop
(including the primary, then all replicas at once) and a flood of clients with garbage
connections. Each ends with every acknowledged write read back and all replicas at one
view, one last executed sequence number and one state digest.

The partition scenarios need a network namespace: `test_partitions.py`.
"""

from __future__ import annotations

import pytest
import trio

from node.cli.cluster.demo import DEMO_OVERRIDES
from node.cli.cluster.launcher import LocalCluster
from node.client.pool import ClientPool
from node.config import init_cluster
from tests.integration.harness import free_base_ports
from tests.integration.scenarios import (
    Writers,
    flood,
    kill_all,
    kill_loop,
    wait_converged,
)

pytestmark = pytest.mark.slow

ROUNDS = 6
HEAD_WITHIN_S = 5.0


async def _cluster(tmp_path, nursery_stack):
    base, http_base = free_base_ports(4)
    init_cluster(
        tmp_path / "c", nodes=4, base_port=base, http_base_port=http_base, overrides=DEMO_OVERRIDES
    )
    lc = await nursery_stack.enter_async_context(
        LocalCluster(tmp_path / "c", grace_s=3.0, control=False)
    )
    cfg = await lc.start(4)
    await lc.wait_healthy(30)
    return lc, cfg


async def test_kill_loop_loses_nothing_and_every_replica_rejoins(tmp_path) -> None:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        lc, cfg = await _cluster(tmp_path, stack)
        pool = ClientPool(cfg)
        writers = Writers(pool, sessions=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.move_on_after(10):
                await pool.wait_connected(cfg.n)
            async with trio.open_nursery() as load:
                await load.start(writers.run)
                rows = await kill_loop(lc, cfg, ROUNDS, seed=11)
                load.cancel_scope.cancel()
            late = [r for r in rows if r["to_head_s"] is None or r["to_head_s"] > HEAD_WITHIN_S]
            assert not late, f"replicas not at the head within {HEAD_WITHIN_S}s: {late}"
            assert any(r["was_primary"] for r in rows), rows
            everything = await kill_all(lc, cfg, pool)
            assert everything["first_put_after_s"] is not None, everything
            ok, entries = await wait_converged(cfg, 20)
            assert ok, entries
            assert len(writers.acked) > 100
            wrong = await writers.verify()
            assert not wrong, f"{len(wrong)} acknowledged writes did not read back: {wrong[:5]}"
            nursery.cancel_scope.cancel()


async def test_a_flood_of_clients_causes_no_view_change_storm(tmp_path) -> None:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        lc, cfg = await _cluster(tmp_path, stack)
        result = await flood(lc, cfg, clients=512, duration_s=10.0, after_s=8.0)
        assert result["load"].get("ops", 0) > 0, result
        assert result["view_changes_during"] <= 2, result
        assert result["view_changes_after"] == 0, result
        assert result["first_put_after_s"] is not None and result["first_put_after_s"] <= 2.0
        for idle, after in zip(result["rss_idle_kib"], result["rss_after_kib"], strict=True):
            assert after is not None and after < idle + 200 * 1024, result
        ok, entries = await wait_converged(cfg, 20)
        assert ok, entries
