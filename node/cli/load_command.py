"""`bft-node load`: run the load (`node.client.load`) and say what it cost.

Besides the load's own figures, the `--json` line carries `cpu_us_per_op`: the CPU the
client process and the local replicas spent over the run (each replica's
`process_cpu_seconds_total` from its /metrics, before and after), divided by the committed
operations. A replica on another host, or one that did not answer at both ends, is left
out, and `cpu_replicas` says how many were counted (null when none: then only the
client's share would be known, and the figure would mislead).
"""

from __future__ import annotations

import argparse
import json
import resource
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from node.cli.cluster.fetch import FetchError, endpoints, get
from node.client.load import run_load
from node.config import ClusterConfig, load_config

CPU_METRIC = "process_cpu_seconds"
LOCAL_HOSTS = ("localhost", "::1", "0.0.0.0")


def own_cpu_s() -> float:
    """CPU seconds this process has used (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(metrics_text: str) -> float | None:
    """`process_cpu_seconds_total` from a Prometheus text page, or None."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == CPU_METRIC:
            for sample in family.samples:
                return float(sample.value)
    return None


def _is_local(host: str) -> bool:
    return host.startswith("127.") or host in LOCAL_HOSTS


async def replica_cpu(cfg: ClusterConfig) -> dict[int, float]:
    """CPU seconds of each local replica that answers on /metrics."""
    found: dict[int, float] = {}
    local = {r.id for r in cfg.replicas if _is_local(r.host)}

    async def one(endpoint: Any) -> None:
        try:
            status, body = await get(endpoint.metrics_url, timeout=2.0)
        except FetchError:
            return
        value = cpu_seconds(body.decode("utf-8", "replace")) if status == 200 else None
        if value is not None:
            found[endpoint.id] = value

    async with trio.open_nursery() as nursery:
        for endpoint in endpoints(cfg, sorted(local)):
            nursery.start_soon(one, endpoint)
    return found


async def measured_load(cfg: ClusterConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The load's summary plus `cpu_us_per_op` and `cpu_replicas`."""
    before, client_before = await replica_cpu(cfg), own_cpu_s()
    summary = await run_load(
        cfg,
        args.clients,
        args.duration,
        rate_per_s=args.rate,
        read_ratio=args.read_ratio,
    )
    client_s = own_cpu_s() - client_before
    after = await replica_cpu(cfg)
    counted = sorted(set(before) & set(after))
    replicas_s = sum(after[r] - before[r] for r in counted)
    ops = summary["ops"]
    per_op = (client_s + replicas_s) / ops * 1e6 if ops and counted else None
    return summary | {
        "cpu_us_per_op": None if per_op is None else round(per_op, 1),
        "cpu_replicas": len(counted) or None,
    }


def cmd_load(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    s = trio.run(measured_load, cfg, args)
    mode = f"open loop at {s['rate']:g}/s" if s["rate"] else f"{s['clients']} clients"
    reads = f", {s['reads']} gets" if s["read_ratio"] else ""
    cpu = f", {s['cpu_us_per_op']} µs CPU/op" if s["cpu_us_per_op"] is not None else ""
    print(
        f"committed {s['ops']} ops{reads} in {s['duration_s']}s ({mode}): {s['ops_per_s']} "
        f"ops/s, latency p50 {s['p50_ms']} ms, p90 {s['p90_ms']} ms, p99 {s['p99_ms']} ms, "
        f"p99.9 {s['p999_ms']} ms, errors {s['errors']}{cpu}"
    )
    if args.json:
        print(json.dumps(s))
    return 0 if s["ops"] > 0 else 1
