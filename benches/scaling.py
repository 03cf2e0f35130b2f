"""How the cost grows: throughput and latency against the number of replicas and the
size of the values written.

Real `bft-node run` processes with the default settings on one box, closed-loop puts
from `benches/loadgen.py` in its own process at 256 sessions:

- n = 4, 7 and 10 replicas (f = 1, 2, 3), 100-byte values;
- n = 4 with values of 100 B, 1 KiB and 10 KiB.

Each point is the median of `--rounds` runs (the rounds go through every point in turn, so
a noisy minute hits all of them). Prints a table, writes `benches/results/scaling.json`,
`scaling.md` and one plot per sweep (`scaling_replicas.png`, `scaling_values.png`).
Every replica and the load share the box's cores, so the replica sweep measures the
protocol's growing cost per request on a fixed machine, not a deployment's throughput.
Bounded: fixed durations; traffic only on 127.0.0.1.

    python benches/scaling.py [--quick] [--rounds R] [--json]
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
    RESULTS,
    process_cpu_s,
    pyplot,
    report,
    round_options,
    run_bounded,
    run_loadgen,
    running_cluster,
)

CLIENTS = 256
REPLICAS = (4, 7, 10)
VALUES = (100, 1024, 10240)
HEADERS = ("replicas", "value bytes", "ops/s", "p50 ms", "p99 ms", "CPU µs/op", "errors")


async def one_run(cluster: Any, value_bytes: int, duration: float) -> dict[str, Any]:
    """One closed-loop run of puts of `value_bytes`, with the CPU of every process."""
    pids = [cluster.replicas[i].pid for i in sorted(cluster.replicas)]
    cpu0 = sum(process_cpu_s(p) for p in pids)
    result = await run_loadgen(cluster.cfg.path, CLIENTS, duration, value_bytes=value_bytes)
    cpu1 = sum(process_cpu_s(p) for p in pids)
    s = result["summary"]
    return {
        "ops_per_s": s["ops_per_s"],
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "errors": s["errors"],
        "cpu_us_per_op": round(1e6 * (cpu1 - cpu0 + result["cpu_s"]) / max(1, s["ops"])),
    }


async def point(n: int, value_bytes: int, duration: float) -> dict[str, Any]:
    """A fresh cluster of `n` replicas, warmed up, then one measured run."""
    async with running_cluster({}, nodes=n) as cluster:
        await run_loadgen(cluster.cfg.path, 64, 1.0)  # connections and caches warm
        return {"replicas": n, "value_bytes": value_bytes} | await one_run(
            cluster, value_bytes, duration
        )


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for key in sorted({(r["replicas"], r["value_bytes"]) for r in runs}):
        mine = [r for r in runs if (r["replicas"], r["value_bytes"]) == key]
        row: dict[str, Any] = {"replicas": key[0], "value_bytes": key[1], "rounds": len(mine)}
        for field in ("ops_per_s", "p50_ms", "p99_ms", "cpu_us_per_op", "errors"):
            row[field] = statistics.median(r[field] for r in mine)
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], field: str, fixed: tuple[str, int], name: str) -> Path:
    """ops/s and p99 against `field`, for the rows where `fixed` holds."""
    plt = pyplot()
    mine = [r for r in rows if r[fixed[0]] == fixed[1]]
    xs = [r[field] for r in mine]
    fig, left = plt.subplots(figsize=(6, 3.5))
    left.plot(xs, [r["ops_per_s"] for r in mine], "o-", color="tab:blue", label="ops/s")
    left.set_xlabel(field.replace("_", " "))
    left.set_ylabel("committed ops/s", color="tab:blue")
    right = left.twinx()
    right.plot(xs, [r["p99_ms"] for r in mine], "s--", color="tab:red", label="p99 ms")
    right.set_ylabel("p99 latency (ms)", color="tab:red")
    if field == "value_bytes":
        left.set_xscale("log")
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    duration = 3.0 if args.quick else 6.0
    points = [(n, 100) for n in REPLICAS] + [(4, v) for v in VALUES if v != 100]
    runs = []
    for _ in range(args.rounds):
        for n, value in points:
            runs.append(await point(n, value, duration))
            r = runs[-1]
            print(f"  n={n:2d} value={value:5d} B: {r['ops_per_s']:,.0f} ops/s", flush=True)
    return {"clients": CLIENTS, "duration_s": duration, "runs": runs, "medians": medians(runs)}


def table_rows(out: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            r["replicas"],
            r["value_bytes"],
            f"{r['ops_per_s']:,.0f}",
            r["p50_ms"],
            r["p99_ms"],
            r["cpu_us_per_op"],
            r["errors"],
        ]
        for r in out["medians"]
    ]


def main() -> None:
    args = round_options(__doc__, rounds=2)
    out = run_bounded(bench, args, 1500)
    paths = report("scaling", "How the cost grows", HEADERS, table_rows(out), out)
    paths.append(plot(out["medians"], "replicas", ("value_bytes", 100), "scaling_replicas"))
    paths.append(plot(out["medians"], "value_bytes", ("replicas", 4), "scaling_values"))
    for path in paths:
        print(f"wrote {path}")
    if args.json:
        print(json.dumps(out["medians"]))


if __name__ == "__main__":
    main()
