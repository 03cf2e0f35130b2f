"""Status documents for the watch tests: a peer's fields, a replica's entry (with chosen
circuits), a replica that does not answer, a healthy cluster; and text of a render."""

from __future__ import annotations

import io

from rich.console import Console


def peer(circuit="closed", timeout_ms=12.5, queued=0, trips=0, failures=0):
    return {
        "circuit": circuit,
        "consecutive_failures": failures,
        "timeout_ms": timeout_ms,
        "queued": queued,
        "health": 0.98,
        "trips": trips,
    }


def entry(rid, n=4, view=0, last=100, stable=100, fault=None, degraded=False, **circuits):
    peers = {str(p): peer() for p in range(n) if p != rid}
    for name, info in circuits.items():
        peers[name.removeprefix("p")] = info
    return {
        "id": rid,
        "view": view,
        "primary": view % n,
        "last_executed": last,
        "stable_checkpoint": stable,
        "state_digest": "ab" * 32,
        "fault": fault,
        "degraded": degraded,
        "peers": peers,
        "reachable": True,
    }


def down(rid, error="connection refused"):
    return {"id": rid, "reachable": False, "error": error, "url": f"http://x/{rid}"}


def healthy_cluster(n=4):
    return [entry(i, n) for i in range(n)]


def kinds(events):
    return [e.kind for e in events]


def rendered(renderable, width=160) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()
