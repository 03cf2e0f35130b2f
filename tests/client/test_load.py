"""The load generator against an in-process cluster (mock clock): the open-loop schedule,
the read share, and the summary's percentiles; and the command's CPU accounting."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.cli.load_command import cpu_seconds
from node.client.load import run_load, summarize
from node.errors import UserError
from node.observability.metrics import ReplicaMetrics
from tests.shell.cluster import open_cluster


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.01)


async def test_open_loop_follows_its_schedule_and_mixes_reads(tmp_path, clock) -> None:
    async with open_cluster(tmp_path) as cluster:
        summary = await run_load(
            cluster.cfg, 8, 2.0, rate_per_s=50, read_ratio=0.5, network=cluster.net
        )
    assert summary["rate"] == 50 and summary["read_ratio"] == 0.5
    assert summary["ops"] == 100 and summary["errors"] == 0  # 2 s at 50/s, all kept up
    assert 30 <= summary["reads"] <= 70
    assert summary["p50_ms"] <= summary["p99_ms"] <= summary["p999_ms"]


async def test_closed_loop_writes_only_by_default(tmp_path, clock) -> None:
    clock.rate = 1.0  # a closed loop never idles: let virtual time pass with real time
    async with open_cluster(tmp_path) as cluster:
        summary = await run_load(cluster.cfg, 4, 1.0, network=cluster.net)
    assert summary["ops"] > 10 and summary["reads"] == 0 and summary["rate"] is None


async def test_bad_arguments_are_user_errors(tmp_path, clock) -> None:
    async with open_cluster(tmp_path, n=1) as cluster:
        for kwargs, fragment in (
            ({"rate_per_s": 0}, "--rate"),
            ({"rate_per_s": float("inf")}, "--rate"),
            ({"read_ratio": 1.5}, "--read-ratio"),
        ):
            with pytest.raises(UserError, match=fragment):
                await run_load(cluster.cfg, 1, 1.0, network=cluster.net, **kwargs)


def test_summary_percentiles_include_p999() -> None:
    latencies = [i / 1000 for i in range(1, 1001)]  # 1..1000 ms
    s = summarize(latencies, 4, 2.0, 0)
    assert (s["p50_ms"], s["p99_ms"], s["p999_ms"]) == (500.0, 990.0, 999.0)
    assert s["ops_per_s"] == 500.0


def test_cpu_seconds_is_read_from_a_replicas_metrics_page() -> None:
    page = ReplicaMetrics(0, None).render().decode()
    value = cpu_seconds(page)
    assert value is not None and value > 0  # this test process has used some CPU
    assert cpu_seconds("# nothing here\nbft_view 3\n") is None


async def test_values_of_the_size_asked_for(tmp_path, clock) -> None:
    async with open_cluster(tmp_path) as cluster:
        summary = await run_load(
            cluster.cfg, 2, 1.0, rate_per_s=10, value_bytes=1000, network=cluster.net
        )
        assert summary["ops"] == 10
        stored = cluster.replicas[0].core._exec.app._data
        assert stored and {len(v) for v in stored.values()} == {1000}
