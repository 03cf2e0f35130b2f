"""An in-process cluster for shell tests: n real `Replica`s (core, storage, guards, peer
traffic, round writer) and real clients over a `MemoryNetwork`, under the mock clock.

    async with open_cluster(tmp_path) as cluster:    # every replica listening
        pool = await cluster.client(nursery)         # a ClientPool on the same network
        await cluster.kill(3); await cluster.revive(3)
        cluster.status(0)                            # the /status document, no HTTP

Everything but the clock and the sockets is what a `bft-node run` process runs: the
replicas keep their data dirs in `tmp_path`, so `revive` recovers from disk. Timeouts are
short (a second or two to notice a dead peer) and every wait in a test is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from node.client.pool import ClientPool
from node.config import ClusterConfig, init_cluster, load_config, load_private_key
from node.shell.fault_modes import Fault
from node.shell.replica import Replica
from node.shell.status import status_dict
from tests.integration.harness import FAST as PROCESS_FAST
from tests.shell.memnet import MemoryNetwork

#: the real-process tests' short timeouts, with a view-change timeout that leaves room for
#: the heartbeats to notice a dead primary first
FAST = {**PROCESS_FAST, "consensus": {**PROCESS_FAST["consensus"], "view_change_timeout_s": 1.5}}


class MemoryCluster:
    """The replicas of one cluster directory, each in a cancel scope of its own."""

    def __init__(self, directory: Path, nursery: trio.Nursery, n: int, **overrides: Any) -> None:
        settings = {k: dict(v) for k, v in FAST.items()}
        for section, values in overrides.items():
            settings.setdefault(section, {}).update(values)
        path = init_cluster(directory / "cluster", nodes=n, overrides=settings)
        self.cfg: ClusterConfig = load_config(path)
        self.directory = directory
        self.net = MemoryNetwork()
        self.replicas: dict[int, Replica] = {}
        self._nursery = nursery
        self._scopes: dict[int, trio.CancelScope] = {}
        self._gone: dict[int, trio.Event] = {}

    async def start(self, rid: int, fault: Fault | None = None) -> Replica:
        """Start replica `rid` (recovering from its data dir); return once it listens."""
        if rid in self._scopes:
            raise RuntimeError(f"replica {rid} is running")
        key = load_private_key(self.cfg.replica_key_path(rid))
        replica = Replica(
            self.cfg,
            rid,
            key,
            self.directory / f"data-{rid}",
            fault,
            seed=rid,
            network=self.net,
            serve_http=False,
        )
        await self._nursery.start(self._run, rid, replica)
        self.replicas[rid] = replica
        return replica

    async def _run(self, rid: int, replica: Replica, *, task_status: trio.TaskStatus[None]) -> None:
        gone = self._gone[rid] = trio.Event()
        try:
            with trio.CancelScope() as self._scopes[rid]:
                await replica.run(task_status=task_status)
        finally:
            del self._scopes[rid]
            gone.set()

    async def kill(self, rid: int) -> None:
        """Stop replica `rid` at once, as a crash would (its disk stays)."""
        self._scopes[rid].cancel()
        with trio.fail_after(5):
            await self._gone[rid].wait()

    async def revive(self, rid: int) -> Replica:
        return await self.start(rid)

    async def client(self, principal: str = "client") -> ClientPool:
        """A client pool on the cluster's network, connected to the replicas that run."""
        pool = ClientPool(self.cfg, principal, network=self.net)
        await self._nursery.start(pool.run)
        with trio.fail_after(10):
            await pool.wait_connected(len(self._scopes))
        return pool

    def status(self, rid: int) -> dict[str, Any]:
        return status_dict(self.replicas[rid])

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait (in virtual time) until `predicate()` holds; fail after `timeout` s."""
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.05)


@asynccontextmanager
async def open_cluster(
    directory: Path, n: int = 4, **overrides: Any
) -> AsyncIterator[MemoryCluster]:
    """A running in-process cluster; every replica is stopped on exit."""
    async with trio.open_nursery() as nursery:
        cluster = MemoryCluster(directory, nursery, n, **overrides)
        for rid in range(n):
            await cluster.start(rid)
        yield cluster
        nursery.cancel_scope.cancel()
