"""Recovery timelines from real processes: how fast the cluster notices a death, heals,
elects a new primary, and brings a replica that missed many operations back.

Four `bft-node run` processes with the demo's settings (`node.cli.cluster.demo.DEMO_OVERRIDES`:
2 s breaker open timeout, 1.5 s view-change timeout, 0.25 s keepalive), closed-loop load
from `benches/loadgen.py` in its own process for the whole run, and /status of every
replica polled every 50 ms (`node.cli.cluster.chaos.RecoveryTracker` turns the polls into
figures). Schedule, in seconds after the load starts:

- 4: kill a backup -> seconds until every other replica's circuit to it is open;
- 12: revive it -> seconds until every circuit to it is closed again;
- 20: kill the primary -> seconds until the first commit in a new view;
- 28: revive it -> circuits closed;
- then kill a backup, keep the load on until the others executed 50,000 more requests
  (5,000 with --quick), revive it -> seconds until it executed up to where the others
  were at its revival (state transfer plus the rest), and requests/s of catching up.

Throughput over time (0.5 s buckets of committed requests) around every event is plotted
with the kill/revive moments marked. Writes `benches/results/recovery.{json,md}` and
`recovery_timeline.png`. Bounded: every phase has a deadline; traffic only on 127.0.0.1.

    python benches/recovery.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS,
    rate_series,
    run_loadgen,
    running_cluster,
    statuses,
    text_table,
    write_results,
)
from recovery_report import HEADERS, markdown, plot, rows, targets  # noqa: E402

from node.cli.cluster.chaos import RecoveryTracker, pick_backup, primary_of  # noqa: E402
from node.cli.cluster.demo import DEMO_OVERRIDES  # noqa: E402

CLIENTS = 32
POLL_S = 0.05
SCHEDULE = ((4.0, "kill", "backup"), (12.0, "revive", "backup"), (20.0, "kill", "primary"))
SCHEDULE += ((28.0, "revive", "primary"),)
SETTLE_S = 2.0  # after the last scheduled step, before the catch-up phase
PHASE_LIMIT_S = 30.0  # longest wait for one measurement


class Run:
    """Shared state of one bench run: the cluster, the poller's view, the tracker."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.tracker = RecoveryTracker()
        self.entries: list[dict[str, Any]] = []
        self.mono0 = time.monotonic()
        self.polls: list[tuple[float, list[dict[str, Any]]]] = []
        self.events: list[tuple[float, str]] = []
        self.killed: dict[str, int] = {}

    def now(self) -> float:
        return time.monotonic() - self.mono0

    async def poll(self) -> None:
        while True:
            self.entries = await statuses(self.cluster, timeout=0.3)
            now = self.now()
            self.tracker.observe(now, self.entries)
            self.polls.append((now, [_slim(e) for e in self.entries]))
            await trio.sleep(POLL_S)

    async def wait_for(self, predicate: Any, limit: float) -> float | None:
        """Seconds until `predicate(entries)` holds (None if it did not within `limit`)."""
        began = self.now()
        with trio.move_on_after(limit):
            while not predicate(self.entries):
                await trio.sleep(POLL_S / 2)
            return self.now() - began
        return None

    async def step(self, action: str, target: str, victim: int | None = None) -> int:
        entries = self.entries
        if victim is None and action == "revive":
            victim = self.killed[target]
        elif victim is None:
            victim = primary_of(entries) if target == "primary" else pick_backup(entries, 4)
            assert victim is not None, "no replica reports a primary"
        self.killed[target] = victim
        self.tracker.begin(action, target, victim, self.now(), entries)
        self.events.append((self.now(), f"{action} {target} {victim}"))
        if action == "kill":
            await self.cluster.kill(victim)
        else:
            await self.cluster.revive(victim)
        return victim


def _slim(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "reachable", "view", "primary", "last_executed", "stable_checkpoint")
    out = {k: e[k] for k in keys if k in e}
    out["requests_executed"] = e.get("requests_executed")
    out["circuits"] = {p: v["circuit"] for p, v in e.get("peers", {}).items()}
    return out


def healthy(entries: list[dict[str, Any]]) -> bool:
    """Every replica reachable, every circuit closed, all within 2 checkpoints."""
    if not entries or not all(e.get("reachable", True) and "view" in e for e in entries):
        return False
    if any(p["circuit"] != "closed" for e in entries for p in e.get("peers", {}).values()):
        return False
    seqs = [e["last_executed"] for e in entries]
    interval = DEMO_OVERRIDES["consensus"]["checkpoint_interval"]
    return max(seqs) - min(seqs) <= 2 * interval


def _live(entries: list[dict[str, Any]], exclude: int) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("reachable", True) and "view" in e and e["id"] != exclude]


async def catch_up(run: Run, gap: int, limit_s: float) -> dict[str, Any]:
    """Kill a backup, let the others execute `gap` requests, revive it, time its return."""
    victim = await run.step("kill", "backup (catch-up)")
    live = _live(run.entries, victim)
    base = max(e.get("requests_executed", 0) for e in live)
    began = run.now()
    waited = await run.wait_for(
        lambda es: (
            max((e.get("requests_executed", 0) for e in _live(es, victim)), default=0) >= base + gap
        ),
        limit_s,
    )
    live = _live(run.entries, victim)
    missed_requests = max(e.get("requests_executed", 0) for e in live) - base
    target_seq = max(e["last_executed"] for e in live)
    stable = max(e["stable_checkpoint"] for e in live)
    await run.step("revive", "backup (catch-up)", victim)

    def me(es: list[dict[str, Any]]) -> dict[str, Any]:
        return next((e for e in es if e["id"] == victim and "last_executed" in e), {})

    transferred_s = await run.wait_for(
        lambda es: me(es).get("last_executed", 0) >= stable, max(limit_s, 60.0)
    )
    caught_s = await run.wait_for(
        lambda es: me(es).get("last_executed", 0) >= target_seq, max(limit_s, 60.0)
    )
    if caught_s is not None and transferred_s is not None:
        caught_s = max(caught_s, transferred_s)
    return {
        "replica": victim,
        "requested_gap": gap,
        "missed_requests": missed_requests,
        "down_for_s": round(run.now() - began, 2),
        "gap_reached": waited is not None,
        "target_seq": target_seq,
        "stable_at_revive": stable,
        "state_transfer_s": None if transferred_s is None else round(transferred_s, 3),
        "caught_up_s": None if caught_s is None else round(caught_s, 3),
        "catch_up_requests_per_s": (round(missed_requests / caught_s) if caught_s else None),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    gap = 5_000 if args.quick else 50_000
    gap_limit = 60.0 if args.quick else 240.0
    with tempfile.TemporaryDirectory(prefix="bft-recovery-") as tmp:
        stop_file = Path(tmp) / "stop"
        async with running_cluster(DEMO_OVERRIDES) as cluster:
            run = Run(cluster)
            load: dict[str, Any] = {}
            out: dict[str, Any] = {
                "quick": args.quick,
                "clients": CLIENTS,
                "settings": DEMO_OVERRIDES,
            }
            async with trio.open_nursery() as nursery:

                async def loadgen() -> None:
                    load.update(
                        await run_loadgen(
                            cluster.cfg.path,
                            CLIENTS,
                            3600.0,
                            request_timeout=5.0,
                            stop_file=stop_file,
                        )
                    )

                nursery.start_soon(loadgen)
                nursery.start_soon(run.poll)
                ok = await run.wait_for(
                    lambda es: any(e.get("requests_executed", 0) > 100 for e in es), 30.0
                )
                if ok is None:
                    raise RuntimeError("the load did not start within 30 s")
                start = run.now()
                for at, action, target in SCHEDULE:
                    await trio.sleep_until(trio.current_time() + max(0.0, start + at - run.now()))
                    await run.step(action, target)
                    print(f"[{run.now() - start:6.2f}s] {action} {target}", flush=True)
                await trio.sleep(SETTLE_S)
                # a second victim before the first one is back would be two faults: wait
                # until every circuit is closed and every replica is near the others
                await run.wait_for(healthy, 60.0)
                print(f"catch-up: a backup misses {gap:,} requests ...", flush=True)
                out["catch_up"] = await catch_up(run, gap, gap_limit)
                await trio.sleep(2.0)
                await trio.Path(stop_file).touch()
                with trio.fail_after(60):
                    while not load:
                        await trio.sleep(0.1)
                nursery.cancel_scope.cancel()
    out["load"] = load["summary"]
    shift = load["mono_origin"] - run.mono0  # loadgen time -> bench time
    timeline = [(t + shift, lat) for t, lat in load["timeline"]]
    end = run.now()
    out["steps"] = [step_dict(s, timeline) for s in run.tracker.steps]
    out["events"] = [{"at_s": round(t, 3), "event": e} for t, e in run.events]
    out["throughput"] = [[t, r] for t, r in rate_series(timeline, end, 0.5)]
    out["targets"] = targets(out)
    return out


def window_rate(timeline: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    if t1 <= t0:
        return None
    return round(sum(1 for t, _ in timeline if t0 <= t < t1) / (t1 - t0), 1)


def step_dict(step: Any, timeline: list[tuple[float, float]]) -> dict[str, Any]:
    return {
        "step": step.label,
        "at_s": round(step.at, 3),
        "circuit_open_s": step.circuit_open_s,
        "circuit_closed_s": step.circuit_closed_s,
        "new_view_commit_s": step.new_view_commit_s,
        "ops_per_s_3s_before": window_rate(timeline, step.at - 3.0, step.at),
        "ops_per_s_3s_after": window_rate(timeline, step.at, step.at + 3.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 5,000-request catch-up gap")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()

    async def bounded() -> dict[str, Any]:
        with trio.fail_after(900):
            return await bench(args)

    out = trio.run(bounded)
    print()
    print(text_table(HEADERS, rows(out)))
    c = out["catch_up"]
    print(
        f"catch-up: missed {c['missed_requests']:,} requests; state transfer "
        f"{c['state_transfer_s']} s, caught up in {c['caught_up_s']} s "
        f"({c['catch_up_requests_per_s']} requests/s)"
    )
    for t in out["targets"]:
        print(f"{'MET    ' if t['met'] else 'NOT MET'}  {t['target']}: {t['measured']}")
    json_path, md_path = write_results("recovery", out, markdown(out))
    for path in (json_path, md_path, plot(out)):
        print(f"wrote {path.relative_to(RESULTS.parent.parent)}")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "throughput"}))


if __name__ == "__main__":
    main()
