"""Breaker overhead: ns per guarded and per rejected call, ours vs pybreaker and aiobreaker,
plus the memory of one peer's resilience state.

    python benches/breaker_overhead.py [--json] [--quick]

Measured side by side in one process, timeit-style: a loop of N calls, repeated, best
repeat kept, divided by N (the loop's own cost is included for every contender alike).

- ours_guarded_ns: `permit = breaker.acquire(now); breaker.record_success(permit, now)`.
- ours_rejected_ns: `acquire(now)` on an open breaker returning None, and the None check.
- pybreaker_guarded_ns: `cb.call(fn)` on a trivial fn; pybreaker_rejected_ns: `cb.call(fn)`
  on an open breaker, catching CircuitBreakerError.
- aiobreaker_guarded_ns / aiobreaker_rejected_ns: `await cb.call_async(coro_fn)` under
  asyncio (same with an open breaker, catching CircuitBreakerError).
- Context: fn_call_ns (calling the trivial fn), asyncio_await_ns (awaiting the trivial
  coroutine); under trio, ours_trio_call_ns (a whole `GuardSet.call`: breaker, deadline
  cancel scope, adaptive timeout, health, result) around an operation that checkpoints
  once, trio_op_ns (that operation bare) and trio_scope_op_ns (inside a bare
  `move_on_after`), so our own share is visible next to trio's cancel-scope cost.
- bytes_per_peer: tracemalloc'd size of one peer's CircuitBreaker + AdaptiveTimeout +
  empty FallbackQueue + PeerHealth (mean over 200 peers; the shared RNG not counted);
  bytes_per_peer_full_window is the same with a full latency window.

Prints a table; with --json also one JSON object as the last line. Always writes
benches/results/breaker_overhead.json. Runs in well under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import random
import sys
import time
import timeit
import tracemalloc
from datetime import timedelta
from pathlib import Path

import aiobreaker
import pybreaker
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.resilience import (  # noqa: E402
    AdaptiveTimeout,
    BreakerConfig,
    CircuitBreaker,
    FallbackConfig,
    FallbackQueue,
    HealthConfig,
    PeerHealth,
    TimeoutConfig,
)
from node.shell.guard import GuardSet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "breaker_overhead.json"
TARGET_GUARDED_NS = 300.0
TARGET_REJECTED_NS = 500.0


def best_ns(stmt: str, env: dict, number: int, repeat: int) -> float:
    timer = timeit.Timer(stmt, globals=env)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def trivial() -> int:
    return 1


async def trivial_async() -> int:
    return 1


def bench_ours(number: int, repeat: int) -> dict[str, float]:
    rng = random.Random(0)
    closed = CircuitBreaker("p", BreakerConfig(), rng)
    opened = CircuitBreaker("q", BreakerConfig(), rng)
    opened.force_open(0.0)
    env = {"closed": closed, "opened": opened, "now": 1.0}
    guarded = best_ns(
        "permit = closed.acquire(now)\nclosed.record_success(permit, now)", env, number, repeat
    )
    rejected = best_ns("permit = opened.acquire(now)\nif permit is None: pass", env, number, repeat)
    assert closed.total_successes == number * repeat and opened.total_rejected == number * repeat
    return {"ours_guarded_ns": guarded, "ours_rejected_ns": rejected}


def bench_pybreaker(number: int, repeat: int) -> dict[str, float]:
    closed = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    opened = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)
    opened.open()
    env = {
        "closed": closed,
        "opened": opened,
        "fn": trivial,
        "CircuitBreakerError": pybreaker.CircuitBreakerError,
    }
    guarded = best_ns("closed.call(fn)", env, number, repeat)
    rejected = best_ns(
        "try:\n    opened.call(fn)\nexcept CircuitBreakerError:\n    pass", env, number, repeat
    )
    return {
        "pybreaker_guarded_ns": guarded,
        "pybreaker_rejected_ns": rejected,
        "fn_call_ns": best_ns("fn()", env, number, repeat),
    }


def bench_aiobreaker(number: int, repeat: int) -> dict[str, float]:
    closed = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=30))
    opened = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(hours=1))
    opened.open()
    error = aiobreaker.CircuitBreakerError

    async def loop_guarded() -> int:
        start = time.perf_counter_ns()
        for _ in range(number):
            await closed.call_async(trivial_async)
        return time.perf_counter_ns() - start

    async def loop_rejected() -> int:
        start = time.perf_counter_ns()
        for _ in range(number):
            try:
                await opened.call_async(trivial_async)
            except error:
                pass
        return time.perf_counter_ns() - start

    async def loop_bare() -> int:
        start = time.perf_counter_ns()
        for _ in range(number):
            await trivial_async()
        return time.perf_counter_ns() - start

    async def main() -> dict[str, float]:
        out = {}
        for name, fn in [
            ("aiobreaker_guarded_ns", loop_guarded),
            ("aiobreaker_rejected_ns", loop_rejected),
            ("asyncio_await_ns", loop_bare),
        ]:
            out[name] = min([await fn() for _ in range(repeat)]) / number
        return out

    return asyncio.run(main())


def bench_trio_call(number: int, repeat: int) -> dict[str, float]:
    """A whole GuardSet.call around an operation that checkpoints once (as any real I/O
    does; without a checkpoint trio never prunes its deadline heap), next to the same
    operation bare and inside a bare `move_on_after` scope."""

    async def no_send(_peer: str, _data: bytes) -> None:
        return None

    async def op() -> None:
        await trio.lowlevel.checkpoint()

    async def main() -> dict[str, float]:
        guards = GuardSet(
            ["p"],
            0,
            BreakerConfig(),
            TimeoutConfig(),
            FallbackConfig(),
            send=no_send,
            probe=None,
            rng=random.Random(0),
        )
        call = guards.call

        async def guarded() -> None:
            for _ in range(number):
                await call("p", op)

        async def bare() -> None:
            for _ in range(number):
                await op()

        async def scoped() -> None:
            for _ in range(number):
                with trio.move_on_after(10.0):
                    await op()

        best = {"ours_trio_call_ns": math.inf, "trio_op_ns": math.inf, "trio_scope_op_ns": math.inf}
        for _ in range(repeat):
            for name, loop in [
                ("ours_trio_call_ns", guarded),
                ("trio_op_ns", bare),
                ("trio_scope_op_ns", scoped),
            ]:
                start = time.perf_counter_ns()
                await loop()
                best[name] = min(best[name], (time.perf_counter_ns() - start) / number)
        assert guards["p"].breaker.total_successes == number * repeat
        return best

    return trio.run(main)


def bench_memory(peers: int = 200) -> dict[str, float]:
    rng = random.Random(0)
    breaker_cfg, timeout_cfg = BreakerConfig(), TimeoutConfig()
    fallback_cfg, health_cfg = FallbackConfig(), HealthConfig()
    kept: list[tuple] = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(peers):
            kept.append(
                (
                    CircuitBreaker(f"peer-{i:04d}", breaker_cfg, rng),
                    AdaptiveTimeout(timeout_cfg, breaker_cfg.request_timeout_s),
                    FallbackQueue(fallback_cfg, peer=f"peer-{i:04d}"),
                    PeerHealth(health_cfg),
                )
            )
        empty = (tracemalloc.get_traced_memory()[0] - before) / peers
        samples = [rng.uniform(0.001, 0.2) for _ in range(timeout_cfg.window)]
        mid = tracemalloc.get_traced_memory()[0]
        for _, timeout, _, _ in kept:
            for sample in samples:
                timeout.record(sample)
        full = empty + (tracemalloc.get_traced_memory()[0] - mid) / peers
    finally:
        tracemalloc.stop()
    return {"bytes_per_peer": round(empty), "bytes_per_peer_full_window": round(full)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args(argv)
    number, slow_number, repeat = (20_000, 5_000, 3) if args.quick else (300_000, 50_000, 7)

    started = time.perf_counter()
    results: dict[str, float] = {}
    results |= bench_ours(number, repeat)
    results |= bench_pybreaker(slow_number * 2, repeat)
    results |= bench_aiobreaker(slow_number, repeat)
    results |= bench_trio_call(slow_number // 5, repeat)
    results |= bench_memory()
    results = {k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()}
    results["guarded_target_met"] = results["ours_guarded_ns"] <= TARGET_GUARDED_NS and (
        results["ours_guarded_ns"] < results["pybreaker_guarded_ns"]
    )
    results["rejected_target_met"] = results["ours_rejected_ns"] <= TARGET_REJECTED_NS and (
        results["ours_rejected_ns"] < results["pybreaker_rejected_ns"]
    )
    results["python"] = platform.python_version()
    results["seconds"] = round(time.perf_counter() - started, 2)

    rows = [
        ("guarded call (permit + success)", "ours_guarded_ns", "pybreaker_guarded_ns",
         "aiobreaker_guarded_ns"),
        ("rejected call (open breaker)", "ours_rejected_ns", "pybreaker_rejected_ns",
         "aiobreaker_rejected_ns"),
    ]  # fmt: skip
    print(f"{'ns per call':34} {'ours':>10} {'pybreaker':>10} {'aiobreaker':>11}")
    for label, ours, py, aio in rows:
        print(f"{label:34} {results[ours]:>10.1f} {results[py]:>10.1f} {results[aio]:>11.1f}")
    print(
        f"context: fn() {results['fn_call_ns']:.1f} ns, asyncio await "
        f"{results['asyncio_await_ns']:.1f} ns; under trio, an op that checkpoints once: "
        f"bare {results['trio_op_ns']:.0f} ns, in move_on_after "
        f"{results['trio_scope_op_ns']:.0f} ns, through GuardSet.call "
        f"{results['ours_trio_call_ns']:.0f} ns"
    )
    print(
        f"memory per peer: {results['bytes_per_peer']} B empty, "
        f"{results['bytes_per_peer_full_window']} B with a full latency window"
    )
    print(
        f"targets (guarded <= {TARGET_GUARDED_NS:.0f} ns, rejected <= "
        f"{TARGET_REJECTED_NS:.0f} ns, both below pybreaker): "
        f"guarded {'met' if results['guarded_target_met'] else 'MISSED'}, "
        f"rejected {'met' if results['rejected_target_met'] else 'MISSED'}; "
        f"{results['seconds']} s"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
