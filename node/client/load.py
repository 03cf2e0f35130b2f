"""Load from many client sessions over one connection pool: closed loop, or open loop.

Closed loop (the default): each session puts (or, with `read_ratio`, sometimes gets) a key,
waits for f+1 matching replies, and goes on; the run is bounded by `duration_s`. Open loop
(`rate_per_s`): the sessions take operations from a fixed schedule of `rate_per_s`
arrivals per second, and each latency is measured from the operation's scheduled moment,
so time spent waiting for a free session counts (no coordinated omission). With
`read_ratio` P a share P of the operations are gets of keys the run writes (each session's
choices come from its own seeded generator), sent read-only (`Session.query`). `summarize` gives the `--json` keys the
contract lists; the command itself (with CPU per operation) is `node/cli/load_command.py`.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import trio

from node.app.kv import op_get, op_put
from node.client.pool import ClientError, ClientPool, Refused, Session
from node.config import ClusterConfig
from node.errors import UserError
from transport import Network

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
        read_ratio: float = 0.0,
        value_bytes: int = 0,
    ) -> None:
        self.pool = pool
        self.request_timeout_s = request_timeout_s
        self.rate_per_s = rate_per_s
        self.timeline = timeline
        self.read_ratio = read_ratio
        self.padding = "x" * value_bytes  # the values written are this long (0: short)
        self.latencies: list[float] = []
        self.errors = 0
        self.refused = 0
        self.reads = 0
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

    def _operation(self, i: int, n: int, rng: random.Random) -> tuple[bytes, bool]:
        """Session `i`'s `n`-th operation, and whether it is a read."""
        key = f"load-{i}-{n % 1000}"
        if self.read_ratio and rng.random() < self.read_ratio:
            return op_get(key), True
        if self.padding:
            return op_put(key, f"{n}:{self.padding}"[: len(self.padding)]), False
        return op_put(key, f"v{n}"), False

    async def client(self, i: int) -> None:
        """One session: operation after operation until the deadline (or schedule) ends."""
        session = Session(self.pool)
        backoff = random.Random(i)
        choices = random.Random(f"reads/{i}")
        n = 0
        while (t0 := await self._due()) is not None:
            n += 1
            op, is_read = self._operation(i, n, choices)
            timeout = min(self.request_timeout_s, max(0.1, self.deadline - t0 + 1.0))
            try:
                if is_read:
                    await session.query(op, timeout)  # read-only, ordered if undecided
                else:
                    await session.invoke(op, timeout)
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
            self.reads += is_read
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
    read_ratio: float = 0.0,
    network: Network | None = None,
    value_bytes: int = 0,
) -> dict[str, Any]:
    """Run the load; return the summary dict. `timeline` collects (time, latency) pairs."""
    if clients < 1:
        raise UserError("--clients must be >= 1")
    if duration_s <= 0:
        raise UserError("--duration must be > 0")
    if rate_per_s is not None and not 0 < rate_per_s < math.inf:
        raise UserError("--rate must be a number of requests per second > 0")
    if not 0.0 <= read_ratio <= 1.0:
        raise UserError("--read-ratio must be between 0 and 1")
    pool = ClientPool(cfg, network=network)
    if value_bytes < 0:
        raise UserError("the value size must be >= 0")
    run = _Run(pool, request_timeout_s, rate_per_s, timeline, read_ratio, value_bytes)
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
    return summary | {
        "refused": run.refused,
        "rate": rate_per_s,
        "rate_per_s": rate_per_s,
        "read_ratio": read_ratio,
        "reads": run.reads,
    }


def summarize(
    sorted_latencies: list[float], clients: int, elapsed: float, errors: int | None
) -> dict[str, Any]:
    """The `--json` summary of a run from its sorted latencies (seconds)."""
    return {
        "ops_per_s": round(len(sorted_latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(sorted_latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(sorted_latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(sorted_latencies, 0.99) * 1000, 2),
        "p999_ms": round(percentile(sorted_latencies, 0.999) * 1000, 2),
        "errors": errors,
        "clients": clients,
        "duration_s": round(elapsed, 2),
        "ops": len(sorted_latencies),
    }
