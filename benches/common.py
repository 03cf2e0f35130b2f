"""Shared helpers of the cluster benches: a 4-replica cluster of real `bft-node run`
processes on free 127.0.0.1 ports, the load generator as a subprocess, /status polling,
and the result files (JSON, a Markdown table, PNG plots with matplotlib's Agg backend).

Everything binds 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.cli.cluster.fetch import fetch_json  # noqa: E402
from node.cli.cluster.launcher import LocalCluster  # noqa: E402
from node.cli.cluster.ports import free_port_block  # noqa: E402
from node.config import init_cluster  # noqa: E402

RESULTS = ROOT / "benches" / "results"
LOADGEN = ROOT / "benches" / "loadgen.py"


# ---------------------------------------------------------------- ports and clusters


def merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Overlay cluster.toml override tables (later layers win, key by key)."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


@asynccontextmanager
async def running_cluster(
    overrides: Mapping[str, Mapping[str, Any]],
    nodes: int = 4,
    *,
    keep: Path | None = None,
    echo: Any = None,
    tls: bool = False,
) -> AsyncIterator[LocalCluster]:
    """A healthy cluster of `nodes` replica processes on free ports, stopped on exit
    (with `tls`, initialised by `init --tls`: mutual TLS on every link).

    The cluster directory is a fresh temporary one (or `keep`, which must not exist)."""
    with tempfile.TemporaryDirectory(prefix="bft-bench-") as tmp:
        directory = keep or Path(tmp) / "cluster"
        base = free_port_block(2 * nodes)
        init_cluster(
            directory,
            nodes=nodes,
            base_port=base,
            http_base_port=base + nodes,
            overrides=overrides,
            tls=tls,
        )
        async with LocalCluster(directory, grace_s=3.0, control=False, echo=echo) as cluster:
            await cluster.start(nodes)
            await cluster.wait_healthy(30)
            await wait_links_up(cluster, timeout=15)
            yield cluster


async def statuses(cluster: LocalCluster, timeout: float = 0.5) -> list[dict[str, Any]]:
    """Every replica's /status (an unreachable one as `{"id": i, "reachable": False}`)."""
    out: list[dict[str, Any]] = [{} for _ in cluster.replicas]

    async def one(i: int) -> None:
        try:
            out[i] = await fetch_json(cluster.status_url(i), timeout=timeout)
        except Exception:
            out[i] = {"id": i, "reachable": False}

    async with trio.open_nursery() as nursery:
        for i in cluster.replicas:
            nursery.start_soon(one, i)
    return out


async def wait_links_up(cluster: LocalCluster, timeout: float) -> None:
    """Until every replica reports every peer's circuit closed (bounded)."""
    with trio.move_on_after(timeout):
        while True:
            entries = await statuses(cluster)
            if all(
                e.get("reachable", True)
                and e.get("peers")
                and all(p["circuit"] == "closed" for p in e["peers"].values())
                for e in entries
            ):
                return
            await trio.sleep(0.1)


# ---------------------------------------------------------------- load


async def run_loadgen(
    config: Path,
    clients: int,
    duration: float,
    *,
    request_timeout: float = 10.0,
    rate: float | None = None,
    read_ratio: float = 0.0,
    value_bytes: int = 0,
    stop_file: Path | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> dict[str, Any]:
    """Run `benches/loadgen.py` as a subprocess; its JSON result (summary + timeline).
    With `stop_file`, the load ends early once that file exists."""
    fd, out_path = tempfile.mkstemp(prefix="bft-load-", suffix=".json")
    os.close(fd)
    cmd = [
        sys.executable,
        str(LOADGEN),
        "--config",
        str(config),
        "--clients",
        str(clients),
        "--duration",
        str(duration),
        "--request-timeout",
        str(request_timeout),
        "--out",
        out_path,
    ]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    if read_ratio:
        cmd += ["--read-ratio", str(read_ratio)]
    if value_bytes:
        cmd += ["--value-bytes", str(value_bytes)]
    if stop_file is not None:
        cmd += ["--stop-file", str(stop_file)]
    try:
        task_status.started()
        with trio.fail_after(duration + 60):
            proc = await trio.run_process(
                cmd, capture_stdout=True, capture_stderr=True, check=False
            )
        if proc.returncode != 0:
            raise RuntimeError(
                f"load generator failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}"
            )
        return json.loads(await trio.Path(out_path).read_text())
    finally:
        os.unlink(out_path)


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far (0.0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- statistics


def box_speed() -> float:
    """Microseconds per Ed25519 verification (the replicas' own code path), best of 5:
    a yardstick of how fast this (possibly shared, virtual) box is while a bench runs,
    so that runs made at different times can be compared."""
    import timeit

    from node.protocol.crypto import Signer, verify

    signer = Signer(bytes(range(32)))
    message = bytes(100)
    signature = signer.sign(message)
    best = min(
        timeit.repeat(lambda: verify(signer.public_key, message, signature), number=2000, repeat=5)
    )
    return round(best / 2000 * 1e6, 1)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def rate_series(
    timeline: Sequence[Sequence[float]], t_end: float, bucket_s: float = 0.5
) -> list[tuple[float, float]]:
    """Committed ops/s per bucket from (completion time, latency) pairs."""
    buckets = max(1, int(t_end / bucket_s + 0.999))
    counts = [0] * buckets
    for t, _lat in timeline:
        i = int(t / bucket_s)
        if 0 <= i < buckets:
            counts[i] += 1
    return [(round((i + 0.5) * bucket_s, 3), c / bucket_s) for i, c in enumerate(counts)]


# ---------------------------------------------------------------- results


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        ["-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else str(v)) for v in row]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells)


def write_results(name: str, data: Mapping[str, Any], markdown: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{name}.json"
    md_path = RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def round_options(doc: str, rounds: int) -> argparse.Namespace:
    """The options of the benches that go through their points in rounds."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs instead of 6 s")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds (default {rounds})")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    return parser.parse_args()


def run_bounded(bench: Any, args: argparse.Namespace, limit_s: float) -> dict[str, Any]:
    """`trio.run(bench, args)`, failing after `limit_s` seconds."""

    async def bounded() -> dict[str, Any]:
        with trio.fail_after(limit_s):
            return await bench(args)

    return trio.run(bounded)


def report(
    name: str, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any
) -> list[Path]:
    """Print the table, write `name`.json and `name`.md; the paths written."""
    print()
    print(text_table(headers, rows))
    md = f"# {title}\n\n{markdown_table(headers, rows)}\n"
    return list(write_results(name, out, md))


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sizes_main(
    doc: str,
    script: str,
    name: str,
    headers: Sequence[str],
    child: Any,
    extra: Mapping[str, Any],
    shown: str,
) -> None:
    """The command line of a bench that measures each state size (key count) in a child
    process of its own, so one size's memory never weighs on the next: ``child(keys)``
    returns that size's row; the table and ``name``.json/.md are written here."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="key counts")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return
    rows = []
    for keys in (int(k) for k in args.sizes.split(",")):
        proc = subprocess.run(
            [sys.executable, script, "--child", str(keys)],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  {keys:,} keys: {shown} {rows[-1][shown]}", flush=True)
    out = {**extra, "sizes": rows}
    table = [[f"{r['keys']:,}", *(r[k] for k in list(rows[0])[1:])] for r in rows]
    for path in report(name, doc.splitlines()[0], headers, table, out):
        print(f"wrote {path}")
    if args.json:
        print(json.dumps(out))
