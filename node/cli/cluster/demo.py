"""`bft-node demo`: a 4-replica cluster with demo-length timeouts, steady load, a chaos
schedule (kill a backup, revive it, kill the primary, revive it) and the live dashboard;
then a summary measured from the run. Exits non-zero if the cluster did not recover.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from node.cli.cluster.chaos import RecoveryTracker, pick_backup, primary_of, schedule, throughput
from node.cli.cluster.fetch import endpoints
from node.cli.cluster.launcher import LocalCluster
from node.cli.cluster.watch import Watcher
from node.client.load import run_load
from node.config import init_cluster
from node.errors import UserError

# Demo-length timeouts: failures are detected in about a second, circuits probe after 2 s.
DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    "cluster": {"request_timeout_s": 0.5},
    "breaker": {"open_timeout_s": 2.0, "request_timeout_s": 1.0, "max_open_timeout_s": 8.0},
    "timeout": {"min_s": 0.05, "max_s": 1.0},
    "consensus": {"checkpoint_interval": 50, "watermark_window": 200, "view_change_timeout_s": 1.5},
    "transport": {"keepalive_interval_s": 0.25, "keepalive_timeout_s": 1.0},
}
POLL_S = 0.1
AGREE_TIMEOUT_S = 20.0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary_table(result: dict[str, Any]) -> Table:
    table = Table(title="bft-node demo: recovery measured from this run")
    for col in (
        "step",
        "at s",
        "circuits open s",
        "circuits closed s",
        "commit in new view s",
        "caught up s",
        "ops/s in window",
    ):
        table.add_column(col, justify="right" if col != "step" else "left")
    for s in result["steps"]:
        table.add_row(
            s["step"],
            _fmt(s["at_s"]),
            _fmt(s["circuit_open_s"]),
            _fmt(s["circuit_closed_s"]),
            _fmt(s["new_view_commit_s"]),
            _fmt(s["caught_up_s"]),
            _fmt(s["ops_per_s_after"]),
        )
    return table


async def run_demo(
    directory: Path,
    nodes: int,
    duration: float,
    console: Console,
    live_view: bool,
    base_port: int,
    http_base_port: int,
) -> dict[str, Any]:
    """Run the demo cluster with load and chaos for `duration` s; the figures it saw."""
    steps = schedule(duration)
    if not (directory / "cluster.toml").exists():
        init_cluster(
            directory,
            nodes=nodes,
            base_port=base_port,
            http_base_port=http_base_port,
            overrides=DEMO_OVERRIDES,
        )
    echo = console.print if not live_view else (lambda _line: None)
    async with LocalCluster(directory, grace_s=3.0, echo=echo) as lc:
        cfg = await lc.start(nodes)
        await lc.wait_healthy(30)
        watcher = Watcher(
            endpoints(cfg),
            fetch_timeout=0.3,
            title="bft-node demo",
            lag_threshold=cfg.section("consensus")["checkpoint_interval"],
        )
        tracker = RecoveryTracker()
        timeline: list[tuple[float, float]] = []
        load_result: list[dict[str, Any]] = []
        start = trio.current_time()
        live = (
            Live(watcher.renderable(), console=console, auto_refresh=False) if live_view else None
        )

        async def load() -> None:
            load_result.append(
                await run_load(cfg, 8, duration, request_timeout_s=5.0, timeline=timeline)
            )

        async def chaos() -> None:
            say = console.print if live is None else (lambda _line: None)
            await _chaos(lc, cfg.n, steps, watcher, tracker, start, say)

        try:
            if live is not None:
                live.start()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_poll, watcher, tracker, start, live, console)
                async with trio.open_nursery() as work:
                    work.start_soon(load)
                    work.start_soon(chaos)
                agreed = await _wait_agreement(watcher)
                nursery.cancel_scope.cancel()
        finally:
            if live is not None:
                live.stop()
    return _result(tracker, timeline, load_result[0], start, duration, agreed)


async def _poll(
    watcher: Watcher, tracker: RecoveryTracker, start: float, live: Live | None, console: Console
) -> None:
    """Poll every replica's /status: feed the tracker, and redraw or print the events."""
    while True:
        new = await watcher.poll()
        tracker.observe(trio.current_time() - start, watcher.entries)
        if live is not None:
            live.update(watcher.renderable(), refresh=True)
        else:
            for ev in new:
                console.print(f"[{ev.at:6.2f}s] {ev.text}")
        await trio.sleep(POLL_S)


async def _chaos(
    lc: LocalCluster,
    n: int,
    steps: list[tuple[float, str, str]],
    watcher: Watcher,
    tracker: RecoveryTracker,
    start: float,
    say: Callable[[str], None],
) -> None:
    """Kill and revive on schedule: the primary or a backup as the cluster reports them
    at that moment; a revive brings back the replica its kill took down."""
    for at, action, target in steps:
        await trio.sleep_until(start + at)
        entries = watcher.entries
        if action == "kill":
            victim = primary_of(entries) if target == "primary" else pick_backup(entries, n)
            if victim is None:
                raise UserError("no replica reports a primary; the cluster is down")
        else:
            victim = next(
                s.replica
                for s in reversed(tracker.steps)
                if s.target == target and s.action == "kill"
            )
        tracker.begin(action, target, victim, trio.current_time() - start, entries)
        await (lc.kill if action == "kill" else lc.revive)(victim)
        say(f"[{trio.current_time() - start:6.2f}s] chaos: {action} {target} (replica {victim})")


async def _wait_agreement(watcher: Watcher) -> bool:
    with trio.move_on_after(AGREE_TIMEOUT_S):
        while True:
            entries = watcher.entries
            marks = {
                (e.get("last_executed"), e.get("state_digest"))
                for e in entries
                if e.get("reachable", True)
            }
            if len(entries) and all(e.get("reachable", True) for e in entries) and len(marks) == 1:
                return True
            await trio.sleep(POLL_S)
    return False


def _result(
    tracker: RecoveryTracker,
    timeline: list[tuple[float, float]],
    load: dict[str, Any],
    start: float,
    duration: float,
    agreed: bool,
) -> dict[str, Any]:
    rel = [(t - start, lat) for t, lat in timeline]
    steps = tracker.steps
    bounds = [s.at for s in steps] + [duration]
    out_steps = []
    for i, s in enumerate(steps):
        out_steps.append(
            {
                "step": s.label,
                "at_s": s.at,
                "circuit_open_s": s.circuit_open_s,
                "circuit_closed_s": s.circuit_closed_s,
                "new_view_commit_s": s.new_view_commit_s,
                "caught_up_s": s.caught_up_s,
                "ops_per_s_after": throughput(rel, s.at, bounds[i + 1]),
            }
        )
    failures = tracker.failures()
    if not agreed:
        failures.append("replicas did not reach the same state digest after the run")
    after = throughput(rel, steps[-1].at + 2.0, duration) if steps else None
    if not after:
        failures.append("no commits after the last revive")
    return {
        "steps": out_steps,
        "ops_per_s_before": throughput(rel, 1.0, steps[0].at if steps else duration),
        "ops_per_s_after": after,
        "load": load,
        "digests_agree": agreed,
        "recovered": not failures,
        "failures": failures,
    }


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        schedule(args.duration)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log or a pipe: room for the summary table
    live_view = console.is_terminal and not args.no_watch and not args.json
    with tempfile.TemporaryDirectory(prefix="bft-demo-") as tmp:
        directory = Path(args.dir) if args.dir else Path(tmp)
        result = trio.run(
            run_demo,
            directory,
            args.nodes,
            args.duration,
            console,
            live_view,
            args.base_port,
            args.http_base_port,
        )
    console.print(summary_table(result))
    console.print(
        f"throughput before chaos: {_fmt(result['ops_per_s_before'])} ops/s; after the last "
        f"revive: {_fmt(result['ops_per_s_after'])} ops/s; load: {result['load']['ops']} ops, "
        f"p50 {result['load']['p50_ms']} ms, p99 {result['load']['p99_ms']} ms, "
        f"errors {result['load']['errors']}"
    )
    console.print(f"state digests agree at the end: {'yes' if result['digests_agree'] else 'NO'}")
    if result["failures"]:
        for failure in result["failures"]:
            console.print(f"[bold red]did not recover:[/] {failure}")
    else:
        console.print("[bold green]the cluster recovered from every step[/]")
    if args.json:
        print(json.dumps(result))
    return 0 if result["recovered"] else 1
