"""Where users feel it: the defaults against tentative execution off and against commit
authenticators off, side by side in one run.

For each setting (`default`; `[consensus] commit_authenticators = false`, every commit's
signature verified; `[consensus] tentative_execution = false`, replies after commit) a
cluster of four `bft-node run` replicas takes, in this order: the write peak (256
closed-loop sessions), a single closed-loop client, and open-loop load at half of that
setting's peak (`--rate`, latency from each request's scheduled moment, so queueing
counts). The settings rotate over `--rounds` rounds so all see the same box; the table
gives the median of each figure and the default's ratio to each other setting.
The same run times the raw WebSocket ceiling (benches/cluster_throughput.py's
`transport_ceiling`) for the peak's share of it. Writes `benches/results/latency.json`
and `latency.md`. Bounded: fixed durations; traffic only on 127.0.0.1.

    python benches/latency.py [--quick] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_throughput import transport_ceiling  # noqa: E402
from common import (  # noqa: E402
    process_cpu_s,
    report,
    round_options,
    run_bounded,
    run_loadgen,
    running_cluster,
)

PEAK_CLIENTS = 256
#: setting -> its [consensus] overrides
SETTINGS: dict[str, dict[str, bool]] = {
    "default": {},
    "commit_macs_off": {"commit_authenticators": False},
    "tentative_off": {"tentative_execution": False},
}
#: at least n + 1 = 5 WebSocket messages per request bound the cluster by the ceiling / 5
MESSAGES_PER_REQUEST = 5
FIGURES = (
    "peak_ops_per_s",
    "cpu_us_per_write",
    "single_p50_ms",
    "single_p99_ms",
    "half_rate_per_s",
    "half_p50_ms",
    "half_p99_ms",
)
HEADERS = (
    "figure",
    "default",
    "commit MACs off",
    "tentative off",
    "default / MACs off",
    "default / tentative off",
)


async def measured(cluster: Any, clients: int, duration: float, rate: float | None = None):
    """One load run's summary, with the replicas' and the client's CPU per operation."""
    pids = [cluster.replicas[i].pid for i in sorted(cluster.replicas)]
    cpu0 = sum(process_cpu_s(p) for p in pids)
    result = await run_loadgen(cluster.cfg.path, clients, duration, rate=rate)
    cpu1 = sum(process_cpu_s(p) for p in pids)
    s = result["summary"]
    s["cpu_us_per_op"] = round(1e6 * (cpu1 - cpu0 + result["cpu_s"]) / max(1, s["ops"]))
    return s


async def one_setting(setting: str, duration: float) -> dict[str, Any]:
    overrides = {"consensus": SETTINGS[setting]}
    async with running_cluster(overrides) as cluster:
        await run_loadgen(cluster.cfg.path, 64, 1.0)  # warm up connections and caches
        peak = await measured(cluster, PEAK_CLIENTS, duration)
        single = await measured(cluster, 1, duration)
        rate = round(peak["ops_per_s"] / 2)
        half = await measured(cluster, PEAK_CLIENTS, duration, rate=rate)
    return {
        "setting": setting,
        "peak_ops_per_s": peak["ops_per_s"],
        "cpu_us_per_write": peak["cpu_us_per_op"],
        "single_p50_ms": single["p50_ms"],
        "single_p99_ms": single["p99_ms"],
        "half_rate_per_s": rate,
        "half_p50_ms": half["p50_ms"],
        "half_p99_ms": half["p99_ms"],
        "errors": peak["errors"] + single["errors"] + half["errors"],
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        name: {k: statistics.median(r[k] for r in runs if r["setting"] == name) for k in FIGURES}
        for name in SETTINGS
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    duration = 3.0 if args.quick else 6.0
    runs = []
    names = list(SETTINGS)
    for i in range(args.rounds):
        for setting in names[i % len(names) :] + names[: i % len(names)]:
            runs.append(await one_setting(setting, duration))
            r = runs[-1]
            print(
                f"  {setting:<16} peak {r['peak_ops_per_s']:,.0f} ops/s,"
                f" {r['cpu_us_per_write']:.0f} µs/write, single p50 {r['single_p50_ms']} ms,"
                f" p99 at {r['half_rate_per_s']}/s {r['half_p99_ms']} ms"
            )
    ceiling = await transport_ceiling(20_000, 3)
    mid = medians(runs)
    cap = ceiling["raw_msgs_per_s"] / MESSAGES_PER_REQUEST
    on = mid["default"]
    return {
        "duration_s": duration,
        "rounds": args.rounds,
        "runs": runs,
        "medians": mid,
        "transport": ceiling,
        "targets": _targets(on, cap),
    }


def _targets(on: dict[str, float], cap: float) -> list[dict[str, Any]]:
    share = on["peak_ops_per_s"] / cap if cap else 0.0
    return [
        _target("p99 < 50 ms at half of peak, open loop", on["half_p99_ms"], "ms", 50),
        _target("single client p50 <= 6 ms", on["single_p50_ms"], "ms", 6),
        _target("CPU per committed write <= 350 µs", on["cpu_us_per_write"], "µs", 350),
        {
            "target": "peak writes >= 65 % of the transport ceiling",
            "measured": f"{100 * share:.0f} % ({on['peak_ops_per_s']:,.0f} of {cap:,.0f})",
            "met": share >= 0.65,
        },
    ]


def _target(text: str, value: float, unit: str, limit: float) -> dict[str, Any]:
    return {"target": text, "measured": f"{value:g} {unit}", "met": value <= limit}


def table_rows(out: dict[str, Any]) -> list[list[Any]]:
    mid = out["medians"]
    d, macs, tent = mid["default"], mid["commit_macs_off"], mid["tentative_off"]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    return [
        [
            k,
            f"{d[k]:,.1f}",
            f"{macs[k]:,.1f}",
            f"{tent[k]:,.1f}",
            ratio(d[k], macs[k]),
            ratio(d[k], tent[k]),
        ]
        for k in FIGURES
    ]


def main() -> None:
    args = round_options(__doc__, rounds=3)
    out = run_bounded(bench, args, 1200)
    title = "Defaults against commit MACs off and tentative execution off"
    paths = report("latency", title, HEADERS, table_rows(out), out)
    for t in out["targets"]:
        print(f"{'MET    ' if t['met'] else 'NOT MET'}  {t['target']}: {t['measured']}")
    for path in paths:
        print(f"wrote {path}")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "runs"}))


if __name__ == "__main__":
    main()
