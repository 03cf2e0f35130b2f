"""`bft-node status`: every replica's /status, fetched concurrently, as a table or JSON.

`collect` asks all replicas at once with a short timeout and returns one entry per
replica, in id order: the replica's /status document plus `"reachable": true`, or
`{"id": I, "reachable": false, "error": "...", "url": "..."}` when it did not answer with
a well-formed document. A replica still recovering answers `{"id": I, "starting": true}`;
its entry is reachable but has no view or sequence numbers yet. `watch` and the demo reuse `collect` and `status_table`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

import trio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from node.cli.cluster import run_trio
from node.cli.cluster.fetch import DEFAULT_TIMEOUT_S, Endpoint, FetchError, endpoints, fetch_json
from node.config import load_config

Entry = dict[str, Any]

# Keys of the contract's /status document that must be integers.
_INT_KEYS = ("id", "view", "primary", "last_executed", "stable_checkpoint")

CIRCUIT_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}


def check_status(doc: Any, expected_id: int) -> str | None:
    """Why `doc` is not a usable /status document of replica `expected_id`, or None."""
    if not isinstance(doc, dict):
        return f"expected a JSON object, got {type(doc).__name__}"
    # A replica still recovering answers {"id": I, "starting": true, ...} without the rest.
    keys = ("id",) if doc.get("starting") is True else _INT_KEYS
    for key in keys:
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{key} missing or not an integer"
    if doc["id"] != expected_id:
        return f"config says replica {expected_id} but it answers as replica {doc['id']}"
    peers = doc.get("peers", {})
    if not isinstance(peers, dict) or not all(isinstance(p, dict) for p in peers.values()):
        return "peers must be an object of objects"
    return None


async def fetch_status(ep: Endpoint, timeout: float = DEFAULT_TIMEOUT_S) -> Entry:
    """One replica's entry: its /status plus `reachable`, or an unreachable entry."""
    try:
        doc = await fetch_json(ep.status_url, timeout)
    except FetchError as exc:
        return {"id": ep.id, "reachable": False, "error": str(exc), "url": ep.status_url}
    problem = check_status(doc, ep.id)
    if problem is not None:
        return {
            "id": ep.id,
            "reachable": False,
            "error": f"bad /status: {problem}",
            "url": ep.status_url,
        }
    return {**doc, "reachable": True}


async def collect(eps: Sequence[Endpoint], timeout: float = DEFAULT_TIMEOUT_S) -> list[Entry]:
    """Every endpoint's entry, fetched concurrently, in the order given."""
    results: list[Entry] = [{} for _ in eps]

    async def one(slot: int, ep: Endpoint) -> None:
        results[slot] = await fetch_status(ep, timeout)

    async with trio.open_nursery() as nursery:
        for slot, ep in enumerate(eps):
            nursery.start_soon(one, slot, ep)
    return results


def peer_summary(peers: Mapping[str, Any]) -> Text:
    """`3 closed` or `1 open: 2 · 1 half_open: 3`, coloured by state."""
    by_state: dict[str, list[str]] = {}
    for peer, info in sorted(peers.items(), key=lambda kv: _peer_key(kv[0])):
        state = str(info.get("circuit", "?"))
        by_state.setdefault(state, []).append(peer)
    if not by_state:
        return Text("-", style="dim")
    text = Text()
    closed = by_state.pop("closed", [])
    if closed:
        text.append(f"{len(closed)} closed", style=CIRCUIT_STYLE["closed"])
    for state, names in sorted(by_state.items()):
        if text:
            text.append(" · ")
        text.append(f"{state}: {','.join(names)}", style=CIRCUIT_STYLE.get(state, "magenta"))
    return text


def _peer_key(peer: str) -> tuple[int, str]:
    return (int(peer), "") if peer.isdigit() else (1 << 30, peer)


def short_digest(entry: Mapping[str, Any]) -> str:
    digest = entry.get("state_digest")
    return digest[:12] if isinstance(digest, str) else "-"


def status_table(entries: Sequence[Entry]) -> Table:
    """The `bft-node status` table: one row per replica."""
    table = Table(title="bft-node status", title_justify="left", expand=False)
    for name, justify in (
        ("replica", "right"),
        ("up", "left"),
        ("view", "right"),
        ("primary", "right"),
        ("last exec", "right"),
        ("stable ckpt", "right"),
        ("digest", "left"),
        ("fault", "left"),
        ("degraded", "left"),
        ("circuits", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for e in entries:
        rid = str(e.get("id", "?"))
        if e.get("reachable") and e.get("starting"):
            table.add_row(rid, Text("starting", style="yellow"), *[""] * 8)
            continue
        if not e.get("reachable"):
            table.add_row(
                rid,
                Text("DOWN", style="bold red"),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                Text(str(e.get("error", "")), style="red"),
            )
            continue
        primary = e["primary"]
        is_primary = primary == e["id"]
        table.add_row(
            rid,
            Text("up", style="green"),
            str(e["view"]),
            Text(
                f"{primary} (me)" if is_primary else str(primary),
                style="bold cyan" if is_primary else "",
            ),
            str(e["last_executed"]),
            str(e["stable_checkpoint"]),
            short_digest(e),
            Text(str(e["fault"]), style="magenta") if e.get("fault") else Text("-", style="dim"),
            Text("yes", style="bold red") if e.get("degraded") else Text("no", style="dim"),
            peer_summary(e.get("peers", {})),
        )
    return table


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    entries = run_trio(collect, endpoints(cfg))
    if args.json:
        print(json.dumps(entries, sort_keys=True))
    else:
        console = Console()
        if not console.is_terminal:  # a pipe or file: do not squeeze the table to 80 columns
            console = Console(width=160)
        console.print(status_table(entries))
    return 0 if any(e.get("reachable") for e in entries) else 1
