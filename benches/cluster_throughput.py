"""Cluster throughput and latency against the ceiling of the stack.

Four real replicas (`bft-node run` processes under `LocalCluster`, free 127.0.0.1 ports,
the default cluster.toml except `consensus.batch_max`) and closed-loop clients at 1, 8,
64 and 256 sessions, for each `batch_max` of the sweep (1, 8, 32, 64 = the default, 128).
The clients run in a subprocess (`benches/loadgen.py`, i.e. `node.client.load.run_load`), so
their CPU stays out of this process, which only starts, measures and stops things. Then,
on the default batch size, an open-loop run at half of the peak rate measured here gives
the latency at half load (timed from each request's scheduled time).

In the same run it measures the transport ceiling: raw trio-websocket one-way 200-byte
messages/s between two processes (`benches/transport.py`'s raw path), divided by n + 1,
the fewest messages a request can cost (one in, n replies); our committed ops/s is shown
as a fraction of it. It also reads every replica's CPU time around each run (CPU per
committed request) and the batch size the primary reached.

Writes `benches/results/cluster_throughput.{json,md}` and the plots
`throughput_vs_clients.png`, `latency_cdf.png`. Bounded: fixed durations, every wait has a
deadline; traffic only on 127.0.0.1.

With `--tls` it measures instead what TLS costs: plain clusters and `init --tls` clusters
(mutual TLS 1.3 on every link) side by side, alternating over two rounds, at the default
batch size with 1, 64 and 256 sessions; the table gives the medians and the TLS / plain
ratio (`benches/results/cluster_tls.{json,md}`).

    python benches/cluster_throughput.py [--quick] [--tls] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS,
    box_speed,
    free_port_block,
    markdown_table,
    process_cpu_s,
    pyplot,
    run_loadgen,
    running_cluster,
    statuses,
    text_table,
    write_results,
)

CLIENTS = (1, 8, 64, 256)
BATCHES = (1, 8, 32, 128, 64)  # 64 (the default) last: the half-load run follows it
DEFAULT_BATCH = 64
HALF_LOAD_SESSIONS = 256
TIME_LIMIT_S = 1800.0


def _load_transport_bench() -> Any:
    """benches/transport.py as a module (its name would clash with the package)."""
    path = Path(__file__).resolve().parent / "transport.py"
    spec = importlib.util.spec_from_file_location("bench_transport", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def transport_ceiling(messages: int, rounds: int) -> dict[str, Any]:
    """Raw trio-websocket one-way 200-byte messages/s to a child process (best round)."""
    bt = _load_transport_bench()
    seed_a, seed_b = os.urandom(32), os.urandom(32)
    unused = free_port_block(1)  # the child's own PeerLink back to us stays unconnected
    cmd = [sys.executable, bt.__file__, "--child", str(unused), seed_a.hex(), seed_b.hex()]
    proc = await trio.lowlevel.open_process(cmd, stdin=-1, stdout=-1)
    rates = []
    try:
        with trio.fail_after(120):
            _, _port, raw_port, _tuned = (await bt.read_line(proc.stdout)).split()
            for _ in range(rounds):
                one_way, _rtts, _pings, _cpus = await bt.bench_raw(int(raw_port), messages, 100)
                rates.append(one_way)
    finally:
        await proc.stdin.aclose()
        with trio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return {
        "message_bytes": bt.SIZE,
        "messages": messages,
        "rounds": rounds,
        "raw_msgs_per_s": round(max(rates)),
        "all_rounds_msgs_per_s": [round(r) for r in rates],
    }


async def one_run(
    cluster: Any, clients: int, duration: float, rate: float | None = None
) -> dict[str, Any]:
    """One load run with CPU and batch figures read from the replicas around it."""
    pids = [cluster.replicas[i].pid for i in sorted(cluster.replicas)]
    before = await statuses(cluster)
    cpu0 = [process_cpu_s(p) for p in pids]
    t0 = trio.current_time()
    result = await run_loadgen(cluster.cfg.path, clients, duration, rate=rate)
    elapsed = trio.current_time() - t0
    cpu1 = [process_cpu_s(p) for p in pids]
    after = await statuses(cluster)
    s = result["summary"]
    ops = max(1, s["ops"])
    primary = after[0].get("primary", 0)
    p_before, p_after = before[primary], after[primary]
    batches = p_after.get("last_executed", 0) - p_before.get("last_executed", 0)
    executed = p_after.get("requests_executed", 0) - p_before.get("requests_executed", 0)
    latencies = sorted(lat for _t, lat in result["timeline"])
    return {
        "clients": clients,
        "rate_per_s": rate,
        "ops_per_s": s["ops_per_s"],
        "p50_ms": s["p50_ms"],
        "p90_ms": s["p90_ms"],
        "p99_ms": s["p99_ms"],
        "errors": s["errors"],
        "ops": s["ops"],
        "duration_s": s["duration_s"],
        "mean_batch": round(executed / batches, 1) if batches else None,
        "replica_cpu_us_per_op": [
            round(1e6 * (b - a) / ops) for a, b in zip(cpu0, cpu1, strict=True)
        ],
        "replica_cores": [round((b - a) / elapsed, 2) for a, b in zip(cpu0, cpu1, strict=True)],
        "client_cpu_us_per_op": round(1e6 * result["cpu_s"] / ops),
        # for the latency CDF: an evenly spaced sample of at most ~5,000 latencies, in ms
        "latency_sample_ms": [
            round(x * 1000, 3) for x in latencies[:: max(1, len(latencies) // 5000)]
        ],
    }


async def sweep(args: argparse.Namespace) -> dict[str, Any]:
    duration = 4.0 if args.quick else 10.0
    out: dict[str, Any] = {
        "quick": args.quick,
        "duration_s": duration,
        "nodes": 4,
        "cpus": os.cpu_count(),
        "load_generator": "benches/loadgen.py subprocess (node.client.load.run_load)",
        "verify_us_before": box_speed(),
    }
    print(f"box speed: one Ed25519 verification takes {out['verify_us_before']} µs")
    print("measuring the transport ceiling (raw trio-websocket, 200-byte messages) ...")
    ceiling = await transport_ceiling(
        messages=10_000 if args.quick else 30_000, rounds=2 if args.quick else 3
    )
    ceiling["per_request_ops_per_s"] = round(ceiling["raw_msgs_per_s"] / 5)
    out["transport_ceiling"] = ceiling
    print(
        f"  raw one-way {ceiling['raw_msgs_per_s']:,} msg/s -> ceiling "
        f"{ceiling['per_request_ops_per_s']:,} requests/s (n + 1 = 5 messages each)"
    )
    runs: list[dict[str, Any]] = []
    batches = (DEFAULT_BATCH,) if args.batches_default_only else BATCHES
    for batch in batches:
        overrides = {"consensus": {"batch_max": batch}}
        async with running_cluster(overrides) as cluster:
            for clients in CLIENTS:
                run = await one_run(cluster, clients, duration)
                run["batch_max"] = batch
                runs.append(run)
                print(
                    f"  batch_max {batch:>3}  clients {clients:>3}: {run['ops_per_s']:>8,.1f} ops/s"
                    f"  p50 {run['p50_ms']:7.1f}  p99 {run['p99_ms']:7.1f} ms"
                    f"  batch {run['mean_batch']}",
                    flush=True,
                )
            if batch == DEFAULT_BATCH:
                peak = max(r["ops_per_s"] for r in runs)
                rate = round(peak / 2, 1)
                half = await one_run(cluster, HALF_LOAD_SESSIONS, duration, rate=rate)
                half["batch_max"] = batch
                half["peak_ops_per_s"] = peak
                out["half_load"] = half
                print(
                    f"  half of peak ({rate:,.1f} req/s scheduled, {HALF_LOAD_SESSIONS} sessions):"
                    f" {half['ops_per_s']:,.1f} ops/s  p50 {half['p50_ms']:.1f}  "
                    f"p90 {half['p90_ms']:.1f}  p99 {half['p99_ms']:.1f} ms",
                    flush=True,
                )
    out["runs"] = runs
    out["verify_us_after"] = box_speed()
    best = max(runs, key=lambda r: r["ops_per_s"])
    out["peak"] = {k: best[k] for k in ("batch_max", "clients", "ops_per_s", "p50_ms", "p99_ms")}
    out["peak"]["fraction_of_ceiling"] = round(
        best["ops_per_s"] / ceiling["per_request_ops_per_s"], 3
    )
    out["targets"] = targets(out)
    return out


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and met / not met."""
    runs = out["runs"]
    best64 = max((r["ops_per_s"] for r in runs if r["clients"] >= 64), default=0.0)
    frac = out["peak"]["fraction_of_ceiling"]
    half = out.get("half_load", {})
    return [
        {
            "target": ">= 5,000 committed ops/s with >= 64 clients",
            "measured": f"{best64:,.0f} ops/s",
            "met": best64 >= 5000,
        },
        {
            "target": ">= 25 % of the transport ceiling (same run)",
            "measured": f"{frac:.0%} of {out['transport_ceiling']['per_request_ops_per_s']:,}",
            "met": frac >= 0.25,
        },
        {
            "target": "p99 < 50 ms at half of peak load",
            "measured": f"p99 {half.get('p99_ms', float('nan')):.1f} ms at "
            f"{half.get('rate_per_s') or 0:,.0f} req/s",
            "met": bool(half) and half["p99_ms"] < 50.0,
        },
    ]


# ---------------------------------------------------------------- output


HEADERS = (
    "batch_max",
    "clients",
    "ops/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean batch",
    "% of ceiling",
    "replica CPU µs/op (sum)",
    "client CPU µs/op",
)


def rows(out: dict[str, Any]) -> list[list[Any]]:
    ceiling = out["transport_ceiling"]["per_request_ops_per_s"]
    table = []
    for r in sorted(out["runs"], key=lambda r: (r["batch_max"], r["clients"])):
        table.append(
            [
                r["batch_max"],
                r["clients"],
                r["ops_per_s"],
                r["p50_ms"],
                r["p90_ms"],
                r["p99_ms"],
                r["mean_batch"],
                f"{r['ops_per_s'] / ceiling:.1%}",
                sum(r["replica_cpu_us_per_op"]),
                r["client_cpu_us_per_op"],
            ]
        )
    return table


def markdown(out: dict[str, Any]) -> str:
    c = out["transport_ceiling"]
    half = out.get("half_load")
    lines = [
        "# Cluster throughput",
        "",
        f"4 replicas + the load generator on one {out['cpus']}-core box, 127.0.0.1; "
        f"{out['duration_s']:g} s per run; clients: {out['load_generator']}.",
        "",
        f"Box speed (one Ed25519 verification, best of 5x2,000): "
        f"{out.get('verify_us_before', '?')} µs before the runs, "
        f"{out.get('verify_us_after', '?')} µs after (about 62 µs on this project's box when "
        "it is quiet; a higher figure means a slower box and lower numbers throughout).",
        "",
        f"Transport ceiling: raw trio-websocket one-way {c['raw_msgs_per_s']:,} msg/s "
        f"(200 B) / (n + 1 = 5) = **{c['per_request_ops_per_s']:,} requests/s**.",
        "",
        markdown_table(HEADERS, rows(out)),
        "",
    ]
    if half:
        lines += [
            f"Half of peak ({half['peak_ops_per_s']:,.1f} ops/s): open-loop "
            f"{half['rate_per_s']:,.1f} requests/s from {half['clients']} sessions, "
            f"batch_max {half['batch_max']}: {half['ops_per_s']:,.1f} ops/s, "
            f"p50 {half['p50_ms']:.1f} ms, p90 {half['p90_ms']:.1f} ms, "
            f"p99 {half['p99_ms']:.1f} ms.",
            "",
        ]
    lines += [
        markdown_table(
            ("target", "measured", "met"),
            [[t["target"], t["measured"], "yes" if t["met"] else "**no**"] for t in out["targets"]],
        ),
    ]
    return "\n".join(lines)


def plots(out: dict[str, Any]) -> list[Path]:
    plt = pyplot()
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for batch in sorted({r["batch_max"] for r in out["runs"]}):
        pts = sorted((r["clients"], r["ops_per_s"]) for r in out["runs"] if r["batch_max"] == batch)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"batch_max {batch}")
    ceiling = out["transport_ceiling"]["per_request_ops_per_s"]
    ax.axhline(ceiling, color="grey", linestyle="--", label=f"transport ceiling {ceiling:,}")
    ax.axhline(0.25 * ceiling, color="grey", linestyle=":", label="25 % of the ceiling")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("closed-loop client sessions")
    ax.set_ylabel("committed ops/s")
    ax.set_title("Throughput vs clients (4 replicas, one 2-core box)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(RESULTS / "throughput_vs_clients.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    default_runs = [r for r in out["runs"] if r["batch_max"] == DEFAULT_BATCH]
    extra = [out["half_load"]] if out.get("half_load") else []
    for r in sorted(default_runs, key=lambda r: r["clients"]) + extra:
        xs = sorted(r["latency_sample_ms"])
        if not xs:
            continue
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        label = (
            f"{r['clients']} clients, closed loop"
            if r.get("rate_per_s") is None
            else f"half of peak: {r['rate_per_s']:,.0f} req/s open loop"
        )
        ax.plot(xs, ys, label=label)
    ax.axvline(50, color="grey", linestyle=":", label="50 ms")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"Latency CDF (batch_max {DEFAULT_BATCH})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(RESULTS / "latency_cdf.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s runs (about 3 minutes)")
    parser.add_argument(
        "--batches-default-only",
        action="store_true",
        help="only batch_max 64 (skip the batch-size sweep)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="compare TLS clusters with plain ones instead"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if args.tls:
        from tls_cost import main_tls

        main_tls(args, one_run, TIME_LIMIT_S)
        return

    async def bounded() -> dict[str, Any]:
        with trio.fail_after(TIME_LIMIT_S):
            return await sweep(args)

    out = trio.run(bounded)
    print()
    print(text_table(HEADERS, rows(out)))
    for t in out["targets"]:
        print(f"{'MET    ' if t['met'] else 'NOT MET'}  {t['target']}: {t['measured']}")
    json_path, md_path = write_results("cluster_throughput", out, markdown(out))
    for path in [json_path, md_path, *plots(out)]:
        print(f"wrote {path.relative_to(RESULTS.parent.parent)}")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "runs"}))


if __name__ == "__main__":
    main()
