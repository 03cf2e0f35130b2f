"""`bft-node load`: closed-loop load from many client sessions over one connection pool.

Each session puts a key, waits for f+1 matching replies, and puts the next; the run is
bounded by `--duration`. With `rate_per_s` (for benches: latency at a given load), the
sessions instead take requests from a fixed schedule of `rate_per_s` arrivals per second
and each latency is measured from the request's scheduled time, so time spent waiting for
a free session counts (no coordinated omission). It prints committed ops/s and latency percentiles, and with
`--json` one JSON object as its last line (`ops_per_s`, `p50_ms`, `p90_ms`, `p99_ms`,
`errors`, `clients`, `duration_s`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
from typing import Any

import trio

from node.app.kv import op_put
from node.client.pool import ClientError, ClientPool, Refused, Session
from node.config import ClusterConfig, load_config
from node.errors import UserError

log = logging.getLogger("bft.load")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Run:
    """One load run's schedule and tallies, shared by its client sessions."""

    def __init__(
        self,
        pool: ClientPool,
        request_timeout_s: float,
        rate_per_s: float | None,
        timeline: list[tuple[float, float]] | None,
    ) -> None:
        self.pool = pool
        self.request_timeout_s = request_timeout_s
        self.rate_per_s = rate_per_s
        self.timeline = timeline
        self.latencies: list[float] = []
        self.errors = 0
        self.refused = 0
        self.start = self.deadline = 0.0
        self._next_arrival = 0

    def begin(self, duration_s: float) -> None:
        self.start = trio.current_time()
        self.deadline = self.start + duration_s

    async def _due(self) -> float | None:
        """When this session's next request counts from (None: the run is over)."""
        now = trio.current_time()
        if now >= self.deadline:
            return None
        if self.rate_per_s is None:
            return now
        t0 = self.start + self._next_arrival / self.rate_per_s
        self._next_arrival += 1
        if t0 >= self.deadline:
            return None
        await trio.sleep_until(t0)
        return t0

    async def client(self, i: int) -> None:
        """One session: put after put until the deadline (or the schedule) ends."""
        session = Session(self.pool)
        backoff = random.Random(i)
        n = 0
        while (t0 := await self._due()) is not None:
            n += 1
            timeout = min(self.request_timeout_s, max(0.1, self.deadline - t0 + 1.0))
            try:
                await session.invoke(op_put(f"load-{i}-{n % 1000}", f"v{n}"), timeout)
            except Refused as exc:  # the cluster is overloaded: back off, then go on
                self.errors += 1
                self.refused += 1
                log.debug("event=load_refused client=%d reason=%s", i, exc.reason)
                await trio.sleep(backoff.uniform(0.05, 0.2))
                continue
            except ClientError as exc:
                self.errors += 1
                log.debug("event=load_error client=%d error=%s", i, exc)
                await trio.sleep(0.05)
                continue
            t1 = trio.current_time()
            self.latencies.append(t1 - t0)
            if self.timeline is not None:
                self.timeline.append((t1, t1 - t0))


async def run_load(
    cfg: ClusterConfig,
    clients: int,
    duration_s: float,
    *,
    request_timeout_s: float = 10.0,
    timeline: list[tuple[float, float]] | None = None,
    rate_per_s: float | None = None,
) -> dict[str, Any]:
    """Run the load; return the summary dict. `timeline` collects (time, latency) pairs."""
    if clients < 1:
        raise UserError("--clients must be >= 1")
    if duration_s <= 0:
        raise UserError("--duration must be > 0")
    if rate_per_s is not None and rate_per_s <= 0:
        raise UserError("the rate must be > 0")
    pool = ClientPool(cfg)
    run = _Run(pool, request_timeout_s, rate_per_s, timeline)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with trio.move_on_after(10):
            await pool.wait_connected(cfg.f + 1)
        # the rest too, briefly (a replica that is down must not hold the load up), so the
        # first requests do not go out while the primary's connection is still opening
        with trio.move_on_after(2):
            await pool.wait_connected(cfg.n)
        run.begin(duration_s)
        async with trio.open_nursery() as clients_nursery:
            for i in range(clients):
                clients_nursery.start_soon(run.client, i)
        elapsed = trio.current_time() - run.start
        nursery.cancel_scope.cancel()
    run.latencies.sort()
    summary = summarize(run.latencies, clients, elapsed, run.errors)
    return summary | {"refused": run.refused, "rate_per_s": rate_per_s}


def summarize(
    sorted_latencies: list[float], clients: int, elapsed: float, errors: int | None
) -> dict[str, Any]:
    """The `--json` summary of a run from its sorted latencies (seconds)."""
    return {
        "ops_per_s": round(len(sorted_latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(sorted_latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(sorted_latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(sorted_latencies, 0.99) * 1000, 2),
        "errors": errors,
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "ops": len(sorted_latencies),
    }


def cmd_load(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    summary = trio.run(run_load, cfg, args.clients, args.duration)
    print(
        f"committed {summary['ops']} ops in {summary['duration_s']}s with {summary['clients']} "
        f"clients: {summary['ops_per_s']} ops/s, latency p50 {summary['p50_ms']} ms, "
        f"p90 {summary['p90_ms']} ms, p99 {summary['p99_ms']} ms, errors {summary['errors']}"
    )
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["ops"] > 0 else 1
