"""Network partitions between real replicas, inside a network namespace of their own.

Run as ``unshare --net -- python -m tests.integration.netns_partition [--cut-s S]`` (root):
it brings up ``lo`` in the new namespace, runs four `bft-node run` processes on
127.0.0.11-14 with the demo's settings, each under its own group id (``setpriv``), and
cuts links with iptables rules on OUTPUT by connection and destination: each connection
a replica opens is marked with its id by owner group (every loopback connection leaves
from 127.0.0.1, so a rule by source address would cut nothing; see INFRA.md), and a cut
drops the marked connections towards the other side's addresses. Writers (this process, group 0) are never cut. Nothing leaves the namespace.

Steps: cut a backup off for ``--cut-s`` seconds while writes go on; heal, and time until it
executes at the head in the others' view; then cut the primary off alone, time until
commits resume (in a new view), heal it and time its return. Every acknowledged write is
read back and the replicas must converge. The result is one JSON line on stdout (with the
iptables packet counts that prove each cut dropped traffic).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from node.cli.cluster.demo import DEMO_OVERRIDES
from node.cli.cluster.launcher import LocalCluster, replica_command
from node.client.pool import ClientPool
from node.config import ClusterConfig, init_cluster
from tests.integration.scenarios import (
    Writers,
    at_head,
    head,
    primary,
    statuses,
    wait_converged,
)

HOSTS = [f"127.0.0.{11 + i}" for i in range(4)]
GID_BASE = 41000


def iptables(*args: str) -> str:
    return subprocess.run(
        ["iptables", "-w", *args], check=True, capture_output=True, text=True
    ).stdout


def mark_connections(n: int) -> None:
    """Mark every connection a replica opens (conntrack mark = its id + 1). A rule on
    the socket owner alone leaks: when a link times out and closes, the kernel keeps
    retransmitting what was queued on the orphaned socket, which has no owner any more."""
    for i in range(n):
        iptables(
            "-t",
            "mangle",
            "-A",
            "OUTPUT",
            "-m",
            "owner",
            "--gid-owner",
            str(GID_BASE + i),
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "CONNMARK",
            "--set-mark",
            str(i + 1),
        )


def cut(victim: int, n: int) -> None:
    """Drop every packet between replica `victim` and the others (both directions)."""
    for other in range(n):
        if other != victim:
            for src, dst in ((victim, other), (other, victim)):
                iptables(
                    "-A",
                    "OUTPUT",
                    "-m",
                    "connmark",
                    "--mark",
                    str(src + 1),
                    "-d",
                    HOSTS[dst],
                    "-j",
                    "DROP",
                )


def heal() -> int:
    """Remove the rules; returns how many packets they dropped."""
    dropped = 0
    for line in iptables("-L", "OUTPUT", "-v", "-n", "-x").splitlines()[2:]:
        fields = line.split()
        if fields and fields[2] == "DROP":
            dropped += int(fields[0])
    iptables("-F", "OUTPUT")
    return dropped


def command(cfg: ClusterConfig, replica_id: int, fault: str | None) -> list[str]:
    gid = str(GID_BASE + replica_id)
    return ["setpriv", f"--regid={gid}", "--clear-groups", *replica_command(cfg, replica_id, fault)]


async def time_until(predicate, cfg: ClusterConfig, limit_s: float) -> float | None:
    began = trio.current_time()
    with trio.move_on_after(limit_s):
        while True:
            if predicate(await statuses(cfg, timeout=0.3)):
                return round(trio.current_time() - began, 3)
            await trio.sleep(0.05)
    return None


async def _cut_backup(cfg: ClusterConfig, backup: int, cut_s: float, out: dict[str, Any]) -> None:
    """Cut a backup off for `cut_s`, heal, and time until it executes at the head."""
    cut(backup, 4)
    await trio.sleep(cut_s)
    mark = head(await statuses(cfg), exclude=backup)
    out["backup_cut_dropped_packets"] = heal()
    out["backup_to_head_s"] = await time_until(lambda es: at_head(es, backup, mark), cfg, 30)
    if out["backup_to_head_s"] is None:  # say where it stuck, for whoever reads the failure
        out["backup_stuck"] = {"mark": mark, "statuses": await statuses(cfg)}


async def _cut_primary(
    cfg: ClusterConfig, p: int, primary_cut_s: float, writers: Writers, out: dict[str, Any]
) -> None:
    """Cut the primary off alone: time the new view and resumed commits, heal, time its return."""
    view = max(e["view"] for e in await statuses(cfg) if "view" in e)
    cut(p, 4)
    moment = trio.current_time()
    entered: dict[int, float] = {}

    def in_new_view(es: list[dict[str, Any]]) -> bool:
        for e in es:
            if e.get("view", -1) > view and not e.get("in_view_change"):
                entered.setdefault(e["id"], round(trio.current_time() - moment, 3))
        return len(entered) >= 3

    out["new_view_s"] = await time_until(in_new_view, cfg, 30)
    if out["new_view_s"] is None:  # say where the backups stuck
        out["view_change_stuck"] = await statuses(cfg)
    out["entered_new_view_s"] = {str(k): v for k, v in sorted(entered.items())}
    await trio.sleep(max(0.0, primary_cut_s - (trio.current_time() - moment)))
    first = writers.first_ack_after(moment)
    out["commits_resumed_s"] = None if first is None else round(first, 3)
    mark = head(await statuses(cfg), exclude=p)
    out["primary_cut_dropped_packets"] = heal()
    out["primary_to_head_s"] = await time_until(lambda es: at_head(es, p, mark), cfg, 30)


async def _verify_writes(
    cfg: ClusterConfig, pool: ClientPool, writers: Writers, out: dict[str, Any]
) -> None:
    """Reconnect the pool, wait for convergence and read every acknowledged write back."""
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with trio.move_on_after(10):
            await pool.wait_connected(cfg.n)
        ok, entries = await wait_converged(cfg, 20)
        out["converged"] = ok
        out["acked"] = len(writers.acked)
        out["lost"] = await writers.verify()
        out["write_errors"] = writers.errors
        nursery.cancel_scope.cancel()


async def scenario(directory: Path, cut_s: float, primary_cut_s: float) -> dict[str, Any]:
    init_cluster(directory, nodes=4, hosts=HOSTS, overrides=DEMO_OVERRIDES)
    mark_connections(4)
    out: dict[str, Any] = {"cut_s": cut_s, "primary_cut_s": primary_cut_s}
    async with LocalCluster(directory, command=command, grace_s=3.0, control=False) as lc:
        cfg = await lc.start(4)
        await lc.wait_healthy(30)
        pool = ClientPool(cfg)
        writers = Writers(pool, sessions=4)
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.move_on_after(10):
                await pool.wait_connected(cfg.n)
            await nursery.start(writers.run)
            await trio.sleep(2.0)
            entries = await statuses(cfg)
            p = primary(entries)
            backup = max(i for i in range(4) if i != p)
            out["backup"], out["primary"] = backup, p

            await _cut_backup(cfg, backup, cut_s, out)

            await _cut_primary(cfg, p, primary_cut_s, writers, out)
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        await _verify_writes(cfg, pool, writers, out)
    # a cut-off replica enters degraded mode once and leaves it once, not with every probe
    log = (directory / "logs" / f"replica-{out['primary']}.log").read_text()
    out["primary_degraded_events"] = len(re.findall(r"event=degraded replica=\d+ reachable", log))
    out["primary_recovered_events"] = len(re.findall(r"event=recovered replica=\d+ reachable", log))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cut-s", type=float, default=20.0)
    ap.add_argument("--primary-cut-s", type=float, default=5.0)
    ap.add_argument("--keep", type=Path, default=None, help="cluster dir to keep (new)")
    args = ap.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="bft-netns-") as tmp:
        directory = args.keep or Path(tmp) / "cluster"
        result = trio.run(scenario, directory, args.cut_s, args.primary_cut_s)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
