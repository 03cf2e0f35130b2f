"""Every replica comes back: the rejoin targets, measured on real processes with the
settings `bft-node demo` uses (`node.cli.cluster.demo.DEMO_OVERRIDES`).

- kill loop: `--rounds` rounds (default 100) of SIGKILL + revive after 1-3 s of a random
  replica (the primary about one time in three) under 4 writer sessions, then all four at
  once; seconds from each revive until that replica executes at the head (in the
  others' view, not changing views); every acknowledged write read back; convergence.
- partition (needs root; in a network namespace of its own, see
  `tests/integration/netns_partition.py`): a backup cut off for `--cut-s` (default 20)
  seconds, then the primary alone; seconds until the backup is at the head after the heal,
  until commits resume after the primary's cut (target: view-change timeout + 1 s).
- flood: `bft-node load --clients 512` for `--flood-s` (default 20) seconds with garbage
  connections (and `--busy N` CPU-burning processes beside it, to play a busy box); view
  changes during and after, seconds until a put succeeds after it, replica memory.

Writes `benches/results/rejoin.json` and `rejoin.md` and prints the table. Bounded: every
phase has a deadline; all traffic on 127.0.0.0/8 or inside the namespace.

    python benches/rejoin.py [--rounds 100] [--cut-s 20] [--flood-s 20] [--busy 0]
        [--only kill-loop,partition,flood]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, box_speed, markdown_table, running_cluster, text_table, write_results  # noqa: E402

from node.cli.cluster.demo import DEMO_OVERRIDES  # noqa: E402
from node.client.pool import ClientPool  # noqa: E402
from tests.integration.scenarios import (  # noqa: E402
    Writers,
    flood,
    kill_all,
    kill_loop,
    wait_converged,
)

HEAD_TARGET_S = 5.0
VC_TIMEOUT_S = DEMO_OVERRIDES["consensus"]["view_change_timeout_s"]


async def kill_loop_phase(rounds: int) -> dict[str, Any]:
    async with running_cluster(DEMO_OVERRIDES) as cluster:
        cfg = cluster.cfg
        pool = ClientPool(cfg)
        writers = Writers(pool, sessions=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.move_on_after(10):
                await pool.wait_connected(cfg.n)
            async with trio.open_nursery() as load:
                await load.start(writers.run)
                rows = await kill_loop(cluster, cfg, rounds, seed=2026)
                load.cancel_scope.cancel()
            everything = await kill_all(cluster, cfg, pool)
            converged, _ = await wait_converged(cfg, 30)
            lost = await writers.verify()
            nursery.cancel_scope.cancel()
    times = [r["to_head_s"] for r in rows if r["to_head_s"] is not None]
    return {
        "rounds": rounds,
        "primary_rounds": sum(r["was_primary"] for r in rows),
        "not_at_head": sum(r["to_head_s"] is None for r in rows),
        "to_head_p50_s": round(statistics.median(times), 3) if times else None,
        "to_head_max_s": max(times) if times else None,
        "over_target": sum(t > HEAD_TARGET_S for t in times),
        "all_killed_first_put_s": everything["first_put_after_s"],
        "acked": len(writers.acked),
        "lost": len(lost),
        "converged": converged,
        "rows": rows,
    }


def partition_phase(cut_s: float) -> dict[str, Any]:
    if os.geteuid() != 0:
        return {"skipped": "needs root (network namespace, iptables)"}
    cmd = ["unshare", "--net", "--", sys.executable, "-m", "tests.integration.netns_partition"]
    cmd += ["--cut-s", str(cut_s), "--primary-cut-s", "8"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=cut_s + 240)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["lost"] = len(result["lost"])
    return result


async def flood_phase(seconds: float, busy: int) -> dict[str, Any]:
    hogs = [
        await trio.lowlevel.open_process([sys.executable, "-c", "while True: pass"])
        for _ in range(busy)
    ]
    try:
        async with running_cluster(DEMO_OVERRIDES) as cluster:
            result = await flood(cluster, cluster.cfg, 512, seconds, after_s=20.0)
            result["converged"], _ = await wait_converged(cluster.cfg, 30)
    finally:
        for hog in hogs:
            hog.kill()
            await hog.wait()
    result["busy_processes"] = busy
    return result


def _kill_loop_rows(k: dict[str, Any]) -> list[list[Any]]:
    """Table rows for the kill-loop phase: writes lost, convergence, time to the head."""
    rows: list[list[Any]] = []
    rows.append(
        [
            "kill loop: acknowledged writes lost",
            f"{k['lost']} of {k['acked']}",
            "yes" if k["lost"] == 0 else "NO",
        ]
    )
    rows.append(
        [
            "kill loop: all replicas converged",
            str(k["converged"]),
            "yes" if k["converged"] else "NO",
        ]
    )
    ok = k["not_at_head"] == 0 and k["over_target"] == 0
    rows.append(
        [
            f"kill loop: each revived replica at the head within {HEAD_TARGET_S:g} s",
            f"p50 {k['to_head_p50_s']} s, max {k['to_head_max_s']} s over {k['rounds']} rounds "
            f"({k['primary_rounds']} primary), {k['over_target'] + k['not_at_head']} late",
            "yes" if ok else "NO",
        ]
    )
    rows.append(
        ["kill loop: all four killed, first put after", f"{k['all_killed_first_put_s']} s", "-"]
    )
    return rows


def _partition_rows(p: dict[str, Any]) -> list[list[Any]]:
    """Table rows for the partition phase: backup and primary cut-offs, writes lost."""
    rows: list[list[Any]] = []
    b = p["backup_to_head_s"]
    rows.append(
        [
            f"partition ({p['cut_s']:g} s): cut-off backup at the head within 5 s",
            f"{b} s",
            "yes" if b is not None and b <= HEAD_TARGET_S else "NO",
        ]
    )
    c = p["commits_resumed_s"]
    rows.append(
        [
            f"primary cut off: commits resume within {VC_TIMEOUT_S + 1:g} s",
            f"{c} s (new view in {p['new_view_s']} s)",
            "yes" if c is not None and c <= VC_TIMEOUT_S + 1 else "NO",
        ]
    )
    rows.append(
        [
            "partition: writes lost / converged",
            f"{p['lost']} / {p['converged']}",
            "yes" if p["lost"] == 0 and p["converged"] else "NO",
        ]
    )
    return rows


def _flood_rows(f: dict[str, Any]) -> list[list[Any]]:
    """Table rows for the flood phase: view changes, first put after, memory, load."""
    rows: list[list[Any]] = []
    rows.append(
        [
            "flood: view changes during (<= 2)",
            f["view_changes_during"],
            "yes" if f["view_changes_during"] <= 2 else "NO",
        ]
    )
    rows.append(
        [
            "flood: view changes after (0)",
            f["view_changes_after"],
            "yes" if f["view_changes_after"] == 0 else "NO",
        ]
    )
    fp = f["first_put_after_s"]
    rows.append(
        [
            "flood: a put succeeds within 2 s of its end",
            f"{fp} s",
            "yes" if fp is not None and fp <= 2.0 else "NO",
        ]
    )
    mem = ", ".join(
        f"{(a or 0) // 1024}/{(b or 0) // 1024}/{(c or 0) // 1024}"
        for a, b, c in zip(f["rss_idle_kib"], f["rss_end_kib"], f["rss_after_kib"], strict=True)
    )
    rows.append(["flood: replica RSS MiB idle/end/after", mem, "-"])
    load = f["load"]
    rows.append(
        [
            "flood: load (512 clients)",
            f"{load.get('ops_per_s')} ops/s, p99 {load.get('p99_ms')} ms, "
            f"refused {load.get('refused')}, busy={f['busy_processes']}",
            "-",
        ]
    )
    return rows


def table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["target", "measured", "met"]
    rows: list[list[Any]] = []
    k = result.get("kill_loop")
    if k:
        rows += _kill_loop_rows(k)
    p = result.get("partition")
    if p and "backup_to_head_s" in p:
        rows += _partition_rows(p)
    elif p:
        rows.append(["partition", p.get("skipped") or p.get("error", "")[:80], "-"])
    f = result.get("flood")
    if f:
        rows += _flood_rows(f)
    return headers, rows


async def main(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(","))
    result: dict[str, Any] = {"box_us_per_verify": box_speed(), "settings": DEMO_OVERRIDES}
    if "kill-loop" in only:
        result["kill_loop"] = await kill_loop_phase(args.rounds)
    if "partition" in only:
        result["partition"] = await trio.to_thread.run_sync(partition_phase, args.cut_s)
    if "flood" in only:
        result["flood"] = await flood_phase(args.flood_s, args.busy)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--cut-s", type=float, default=20.0)
    ap.add_argument("--flood-s", type=float, default=20.0)
    ap.add_argument("--busy", type=int, default=0, help="CPU-burning processes during the flood")
    ap.add_argument("--only", default="kill-loop,partition,flood")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = ap.parse_args()
    out = trio.run(main, args)
    headers, rows = table(out)
    print(text_table(headers, rows))
    md = "# Rejoin targets (benches/rejoin.py)\n\n" + markdown_table(headers, rows) + "\n"
    paths = write_results("rejoin", out, md)
    print(f"wrote {paths[0]} and {paths[1]}")
    if args.json:
        print(json.dumps(out))
