"""Helpers for tests that run real `bft-node` processes on 127.0.0.1.

`fast_cluster_dir` writes a cluster directory on free ports with short timeouts (the
user-editable keys of cluster.toml), so failure detection and view changes take about a
second instead of the production defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import trio

from node.cli.cluster.fetch import fetch_json, get
from node.cli.cluster.ports import free_port_block
from node.config import init_cluster

FAST = {
    "cluster": {"request_timeout_s": 0.5},
    "breaker": {
        "failure_threshold": 3,
        "open_timeout_s": 1.0,
        "request_timeout_s": 1.0,
        "max_open_timeout_s": 2.0,
    },
    "timeout": {"min_s": 0.05, "max_s": 1.0},
    "consensus": {
        "checkpoint_interval": 20,
        "watermark_window": 80,
        "view_change_timeout_s": 1.0,
        "batch_max": 32,
    },
    "transport": {"keepalive_interval_s": 0.25, "keepalive_timeout_s": 1.0},
}


def free_base_ports(n: int) -> tuple[int, int]:
    """Two blocks of n consecutive free ports on 127.0.0.1 (peer, http)."""
    base = free_port_block(2 * n)
    return base, base + n


def fast_cluster_dir(directory: Path, nodes: int = 4, **extra: dict[str, Any]) -> Path:
    overrides = {k: dict(v) for k, v in FAST.items()}
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    base, http_base = free_base_ports(nodes)
    init_cluster(
        directory, nodes=nodes, base_port=base, http_base_port=http_base, overrides=overrides
    )
    return directory / "cluster.toml"


async def status(cluster: Any, rid: int) -> dict[str, Any] | None:
    try:
        return await fetch_json(cluster.status_url(rid), timeout=1.0)
    except Exception:
        return None


async def metric(cluster: Any, rid: int, name: str, labels: str = "") -> float | None:
    """One sample of a metric from /metrics (labels as they appear, e.g. 'peer="1"')."""
    try:
        code, body = await get(cluster.metrics_url(rid), timeout=1.0)
    except Exception:
        return None
    if code != 200:
        return None
    want = f"{name}{{{labels}}}" if labels else name
    for line in body.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


async def wait_for(predicate, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll an async predicate until it returns a truthy value."""
    last = None
    with trio.move_on_after(timeout):
        while True:
            last = await predicate()
            if last:
                return last
            await trio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def parse_json_line(output: str) -> dict[str, Any]:
    import json

    lines = [line for line in output.strip().splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in output: {output!r}"
    return json.loads(lines[-1])


def no_traceback(text: str) -> bool:
    return re.search(r"Traceback \(most recent call last\)", text) is None
