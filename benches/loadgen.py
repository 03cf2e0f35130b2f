"""The benches' load generator: `node.client.load.run_load` in a process of its own.

Running the closed-loop clients in a separate process keeps their CPU (signing, reply
decoding, f+1 matching) out of the bench's own event loop, which also polls /status and
kills or revives replicas on time. The process writes one JSON document to `--out`: the
load summary (`ops_per_s`, `p50_ms`, ...) plus every completed request as
`[completion time, latency]` pairs (seconds; add `mono_origin` to a time to get the
`time.monotonic()` reading of the moment, which every process on the box shares).
`--stop-file F` ends the load early when F appears (the summary then covers what
completed), for benches whose phases last as long as they need.

    python benches/loadgen.py --config DIR/cluster.toml --clients 64 --duration 10 --out F

`--rate R` runs the schedule of `node.client.load.run_load(rate_per_s=R)` instead of a closed loop;
`--read-ratio P` makes that share of the operations read-only gets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.client.load import run_load, summarize  # noqa: E402
from node.config import load_config  # noqa: E402


async def main(args: argparse.Namespace) -> dict:
    cfg = load_config(args.config)
    timeline: list[tuple[float, float]] = []
    # CLOCK_MONOTONIC is shared by every process on the box: the bench aligns its events
    # with this load's timeline through it (trio's clock has a per-run offset)
    mono0, trio0 = time.monotonic(), trio.current_time()
    summary: dict | None = None
    async with trio.open_nursery() as nursery:

        async def load() -> None:
            nonlocal summary
            summary = await run_load(
                cfg,
                args.clients,
                args.duration,
                request_timeout_s=args.request_timeout,
                timeline=timeline,
                rate_per_s=args.rate,
                read_ratio=args.read_ratio,
                value_bytes=args.value_bytes,
            )
            nursery.cancel_scope.cancel()

        async def watch_stop_file() -> None:
            while not await trio.Path(args.stop_file).exists():
                await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

        nursery.start_soon(load)
        if args.stop_file:
            nursery.start_soon(watch_stop_file)
    if summary is None:  # stopped early: summarise what completed
        summary = summarize_partial(timeline, args.clients, trio.current_time() - trio0)
    return {
        "summary": summary,
        "mono_origin": mono0 - trio0,  # add to a timeline time to get time.monotonic()
        "timeline": [[round(t, 6), round(lat, 6)] for t, lat in timeline],
        "cpu_s": time.process_time(),
    }


def summarize_partial(timeline: list[tuple[float, float]], clients: int, elapsed: float) -> dict:
    latencies = sorted(lat for _, lat in timeline)
    return summarize(latencies, clients, elapsed, None) | {"stopped_early": True}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="requests/s on a fixed schedule (open loop)")
    parser.add_argument("--read-ratio", type=float, default=0.0, help="share of gets")
    parser.add_argument("--value-bytes", type=int, default=0, help="size of each put's value")
    parser.add_argument("--stop-file", help="stop early (and still report) once this exists")
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile", help="write cProfile statistics of the clients here")
    args = parser.parse_args()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)
        result = profiler.runcall(trio.run, main, args)
        profiler.dump_stats(args.profile)
    else:
        result = trio.run(main, args)
    Path(args.out).write_text(json.dumps(result))
    s = result["summary"]
    print(
        f"clients={s['clients']} ops/s={s['ops_per_s']} p50={s['p50_ms']}ms "
        f"p99={s['p99_ms']}ms errors={s['errors']}",
        flush=True,
    )


if __name__ == "__main__":
    cli()
