"""Reads against writes: the read-only optimisation measured on real processes.

Four `bft-node run` replicas with the default settings and the closed-loop load of
`benches/loadgen.py` in its own process, for read ratios 0 (all puts: the write peak), 0.9
and 1 (all gets, answered read-only by 2f+1 matching replicas), each at 256 and 512
sessions, interleaved over `--rounds` rounds in one cluster so every point sees the same
box. A ratio's peak is its best client count by median ops/s. Prints a table with the
medians of each point (ops/s, p50, p99, CPU per operation) and each peak's ratio to the
write peak of the same run, and writes `benches/results/reads.json` and `reads.md`.
Bounded: fixed durations; traffic only on 127.0.0.1.

    python benches/reads.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    process_cpu_s,
    report,
    round_options,
    run_bounded,
    run_loadgen,
    running_cluster,
)

CLIENTS = (256, 512)
RATIOS = (0.0, 0.9, 1.0)
HEADERS = (
    "read ratio",
    "clients",
    "ops/s",
    "x write peak",
    "p50 ms",
    "p99 ms",
    "CPU µs/op",
    "errors",
)


async def one_run(cluster: Any, ratio: float, clients: int, duration: float) -> dict[str, Any]:
    """One closed-loop run at `ratio`, with the replicas' and the client's CPU per op."""
    pids = [cluster.replicas[i].pid for i in sorted(cluster.replicas)]
    cpu0 = sum(process_cpu_s(p) for p in pids)
    result = await run_loadgen(cluster.cfg.path, clients, duration, read_ratio=ratio)
    cpu1 = sum(process_cpu_s(p) for p in pids)
    s = result["summary"]
    ops = max(1, s["ops"])
    return {
        "read_ratio": ratio,
        "clients": clients,
        "ops_per_s": s["ops_per_s"],
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "errors": s["errors"],
        "reads": s.get("reads", 0),
        "cpu_us_per_op": round(1e6 * (cpu1 - cpu0 + result["cpu_s"]) / ops),
    }


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ratio and client count, the median of each figure over the rounds, and its
    ops/s over the write peak (the best medians of the all-puts points)."""
    rows = []
    for ratio in RATIOS:
        for clients in CLIENTS:
            mine = [r for r in runs if r["read_ratio"] == ratio and r["clients"] == clients]
            row: dict[str, Any] = {"read_ratio": ratio, "clients": clients, "rounds": len(mine)}
            for key in ("ops_per_s", "p50_ms", "p99_ms", "cpu_us_per_op", "errors"):
                row[key] = statistics.median(r[key] for r in mine)
            rows.append(row)
    peak = max(r["ops_per_s"] for r in rows if r["read_ratio"] == 0.0) or 1.0
    for row in rows:
        row["x_write_peak"] = round(row["ops_per_s"] / peak, 2)
    return rows


def peak_ratio(rows: list[dict[str, Any]], ratio: float) -> float:
    return max(r["x_write_peak"] for r in rows if r["read_ratio"] == ratio)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    duration = 3.0 if args.quick else 6.0
    runs = []
    async with running_cluster({}) as cluster:
        await run_loadgen(cluster.cfg.path, 64, 1.0)  # warm up connections and caches
        for _ in range(args.rounds):
            for ratio in RATIOS:
                for clients in CLIENTS:
                    runs.append(await one_run(cluster, ratio, clients, duration))
                    ops = runs[-1]["ops_per_s"]
                    print(f"  read ratio {ratio:3.1f}, {clients} clients: {ops:,.0f} ops/s")
    rows = medians(runs)
    return {
        "clients": list(CLIENTS),
        "duration_s": duration,
        "rounds": args.rounds,
        "runs": runs,
        "medians": rows,
        "targets": [
            {
                "target": "reads (--read-ratio 1) >= 2x the write peak",
                "measured": f"{peak_ratio(rows, 1.0)}x",
                "met": peak_ratio(rows, 1.0) >= 2.0,
            },
            {
                "target": "90 % read mix >= 1.5x the write peak",
                "measured": f"{peak_ratio(rows, 0.9)}x",
                "met": peak_ratio(rows, 0.9) >= 1.5,
            },
        ],
    }


def table_rows(out: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            f"{r['read_ratio']:.1f}",
            r["clients"],
            f"{r['ops_per_s']:,.0f}",
            f"{r['x_write_peak']:.2f}",
            r["p50_ms"],
            r["p99_ms"],
            r["cpu_us_per_op"],
            r["errors"],
        ]
        for r in out["medians"]
    ]


def main() -> None:
    args = round_options(__doc__, rounds=3)
    out = run_bounded(bench, args, 900)
    paths = report("reads", "Reads against writes", HEADERS, table_rows(out), out)
    for t in out["targets"]:
        print(f"{'MET    ' if t['met'] else 'NOT MET'}  {t['target']}: {t['measured']}")
    for path in paths:
        print(f"wrote {path}")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "runs"}))


if __name__ == "__main__":
    main()
