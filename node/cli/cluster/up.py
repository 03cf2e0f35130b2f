"""`bft-node cluster up/kill/revive`: run a local cluster in the foreground until a
signal, and ask a running one (through its control socket) to kill or revive a replica.

`serve_up` runs a `LocalCluster` (`node.cli.cluster.launcher`), prints where everything
is, and on SIGINT/SIGTERM/SIGHUP stops every replica within the grace period (a second
signal skips it).
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import trio

from node.cli.cluster import run_trio
from node.cli.cluster.control import send_control
from node.cli.cluster.launcher import (
    GRACE_S,
    CommandFactory,
    Echo,
    LocalCluster,
    replica_command,
)
from node.errors import UserError


def banner(cluster: LocalCluster) -> str:
    assert cluster.cfg is not None
    cfg = cluster.cfg
    lines = [f"cluster {cluster.directory}: {cfg.n} replicas, f={cfg.f}"]
    for rep in cluster.replicas.values():
        fault = f"  fault {rep.fault}" if rep.fault else ""
        lines.append(
            f"  replica {rep.id}  pid {rep.pid}  status {cluster.status_url(rep.id)}"
            f"  metrics {cluster.metrics_url(rep.id)}{fault}"
        )
    lines += [
        f"  logs in {cluster.directory / 'logs'}",
        f"watch:   bft-node watch --config {cfg.path}",
        f"chaos:   bft-node cluster kill {cluster.directory} I   /   "
        f"bft-node cluster revive {cluster.directory} I",
        "Ctrl-C stops every replica.",
    ]
    return "\n".join(lines)


async def serve_up(
    directory: Path,
    nodes: int = 4,
    faults: Mapping[int, str | None] | None = None,
    *,
    command: CommandFactory = replica_command,
    grace_s: float = GRACE_S,
    echo: Echo = partial(print, flush=True),
    task_status: trio.TaskStatus[LocalCluster] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a cluster until SIGINT/SIGTERM/SIGHUP; a second signal skips the grace period."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            async with LocalCluster(
                directory, command=command, grace_s=grace_s, echo=echo
            ) as cluster:
                await cluster.start(nodes, faults)
                echo(banner(cluster))
                task_status.started(cluster)
                async for signum in signals:
                    echo(
                        f"{signal.Signals(signum).name}: stopping every replica "
                        f"(grace {grace_s:g}s; again to kill at once)"
                    )
                    break

                async def hurry_on_signal() -> None:
                    async for _ in signals:
                        cluster.hurry()

                nursery.start_soon(hurry_on_signal)
            nursery.cancel_scope.cancel()
    echo("cluster stopped")


def cmd_up(args: argparse.Namespace) -> int:
    faults: dict[int, str | None] = {}
    for rid, mode in args.fault:
        if rid in faults:
            raise UserError(f"--fault names replica {rid} twice")
        faults[rid] = mode
    run_trio(partial(serve_up, Path(args.dir), args.nodes, faults))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    reply = run_trio(send_control, Path(args.dir).resolve(), "kill", args.id)
    print(f"killed replica {args.id} (pid {reply.get('pid')})")
    return 0


def cmd_revive(args: argparse.Namespace) -> int:
    reply = run_trio(send_control, Path(args.dir).resolve(), "revive", args.id)
    print(f"revived replica {args.id} (pid {reply.get('pid')})")
    return 0
