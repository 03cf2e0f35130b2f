"""Fixtures for real-process tests: a fast local cluster of `bft-node run` processes."""

from __future__ import annotations

import pytest

from node.cli.cluster.launcher import LocalCluster
from tests.integration.harness import fast_cluster_dir


@pytest.fixture
async def cluster(tmp_path):
    """A running 4-replica cluster with short timeouts (a LocalCluster)."""
    fast_cluster_dir(tmp_path / "c")
    async with LocalCluster(tmp_path / "c", grace_s=3.0, control=False) as lc:
        await lc.start(4)
        await lc.wait_healthy(30)
        yield lc
