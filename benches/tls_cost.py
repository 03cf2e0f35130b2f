"""What TLS costs (`python benches/cluster_throughput.py --tls`): plain clusters and
`init --tls` clusters (mutual TLS 1.3 on every link, replica to replica and client to
replica) side by side in one run, alternating over two rounds, each a fresh four-replica
cluster at the default settings, with 1, 64 and 256 closed-loop sessions. The table gives
the medians and the TLS / plain ratio; CPU is the replicas' and the client's per committed
operation. Writes `benches/results/cluster_tls.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import trio
from common import report, run_loadgen, running_cluster

TLS_CLIENTS = (1, 64, 256)
TLS_FIGURES = ("ops_per_s", "p50_ms", "p99_ms", "cpu_us_per_op")


async def tls_comparison(args: argparse.Namespace, one_run: Any) -> dict[str, Any]:
    """Plain against TLS clusters, same run, alternating; medians per setting and load."""
    duration = 4.0 if args.quick else 8.0
    runs: list[dict[str, Any]] = []
    for round_ in range(2):
        for tls in (False, True) if round_ == 0 else (True, False):
            async with running_cluster({}, tls=tls) as cluster:
                await run_loadgen(cluster.cfg.path, 64, 1.0)  # warm up
                for clients in TLS_CLIENTS:
                    run = await one_run(cluster, clients, duration)
                    cpu = sum(run["replica_cpu_us_per_op"]) + run["client_cpu_us_per_op"]
                    run.pop("latency_sample_ms")  # for the throughput bench's CDF plot only
                    runs.append({"tls": tls, "clients": clients, "cpu_us_per_op": cpu, **run})
                    print(
                        f"  {'tls  ' if tls else 'plain'} clients {clients:>3}: "
                        f"{run['ops_per_s']:>8,.1f} ops/s  p50 {run['p50_ms']:.1f}  "
                        f"p99 {run['p99_ms']:.1f} ms  {cpu} µs/op",
                        flush=True,
                    )
    medians = {
        f"{'tls' if tls else 'plain'}/{c}": {
            k: statistics.median(r[k] for r in runs if r["tls"] is tls and r["clients"] == c)
            for k in TLS_FIGURES
        }
        for tls in (False, True)
        for c in TLS_CLIENTS
    }
    return {"duration_s": duration, "medians": medians, "runs": runs}


def tls_rows(out: dict[str, Any]) -> list[list[Any]]:
    m = out["medians"]
    rows = []
    for c in TLS_CLIENTS:
        plain, tls = m[f"plain/{c}"], m[f"tls/{c}"]
        for k in TLS_FIGURES:
            ratio = f"{tls[k] / plain[k]:.2f}" if plain[k] else "-"
            rows.append([c, k, f"{plain[k]:,.1f}", f"{tls[k]:,.1f}", ratio])
    return rows


def main_tls(args: argparse.Namespace, one_run: Any, limit_s: float) -> None:
    """`cluster_throughput.py --tls`: run the comparison, print and write the table."""

    async def bounded() -> dict[str, Any]:
        with trio.fail_after(limit_s):
            return await tls_comparison(args, one_run)

    out = trio.run(bounded)
    headers = ("clients", "figure", "plain", "tls", "tls / plain")
    title = "TLS against plain links, same run"
    for path in report("cluster_tls", title, headers, tls_rows(out), out):
        print(f"wrote {path}")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "runs"}))
