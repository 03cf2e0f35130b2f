"""`bft-node watch`: a live terminal dashboard of a cluster, refreshed about twice a second.

Pure pieces and one loop:

- `diff_snapshots(prev, cur, at)` (`node.cli.cluster.watch_events`) turns two successive
  `status.collect` results into `Event`s;
- `render(entries, events, now=...)` builds the rich renderable: a replica table, a
  peer-by-peer grid of circuit states, and the recent events, newest first;
- `Watcher` keeps the previous snapshot and a bounded event log; `poll()` fetches, diffs
  and returns the new events, `renderable()` draws the current state;
- `run_watch(watcher, live, duration=...)` drives a `rich.live.Live` until cancelled or
  for a bounded time. The demo reuses `Watcher` and `run_watch`.

Times shown are seconds since the watch started (Trio's clock), never wall-clock reads.
"""

from __future__ import annotations

import argparse
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from node.cli.cluster import run_trio
from node.cli.cluster.fetch import Endpoint, endpoints
from node.cli.cluster.status import CIRCUIT_STYLE, Entry, collect, short_digest
from node.cli.cluster.watch_events import (
    Event,
    by_id,
    diff_snapshots,
    int_field,
    is_live,
    max_executed,
    max_view,
    peers_of,
)
from node.config import load_config

REFRESH_S = 0.5
FETCH_TIMEOUT_S = 0.4
MAX_EVENTS = 200
SHOWN_EVENTS = 12

EVENT_STYLE = {
    "unreachable": "bold red",
    "reachable": "green",
    "view_change": "bold cyan",
    "circuit_open": "red",
    "circuit_half_open": "yellow",
    "circuit_closed": "green",
    "degraded": "bold red",
    "recovered": "green",
    "state_transfer": "blue",
    "caught_up": "blue",
}


# ---------------------------------------------------------------- rendering (pure)


def _ms(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "?"
    return f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def replica_table(entries: Sequence[Entry]) -> Table:
    rows = by_id(entries)
    top = max_executed(rows)
    table = Table(title="replicas", title_justify="left", expand=False, pad_edge=False)
    for name in (
        "id",
        "up",
        "view",
        "role",
        "last exec",
        "lag",
        "stable ckpt",
        "digest",
        "fault",
        "degraded",
    ):
        table.add_column(
            name,
            justify="right"
            if name in ("id", "view", "last exec", "lag", "stable ckpt")
            else "left",
        )
    for rid in sorted(rows):
        e = rows[rid]
        if not e.get("reachable"):
            table.add_row(
                str(rid),
                Text("DOWN", style="bold red"),
                *[""] * 7,
                Text(str(e.get("error", ""))[:40], style="red"),
            )
            continue
        if not is_live(e):
            fault = Text(str(e["fault"]), style="magenta") if e.get("fault") else ""
            table.add_row(str(rid), Text("starting", style="yellow"), *[""] * 6, fault, "")
            continue
        is_primary = int_field(e, "primary", -1) == rid
        lag = top - int_field(e, "last_executed")
        table.add_row(
            str(rid),
            Text("up", style="green"),
            str(int_field(e, "view")),
            Text("primary", style="bold cyan")
            if is_primary
            else Text(f"backup of {int_field(e, 'primary')}", style="dim"),
            str(int_field(e, "last_executed")),
            Text(str(lag), style="yellow" if lag else "dim"),
            str(int_field(e, "stable_checkpoint")),
            short_digest(e),
            Text(str(e["fault"]), style="magenta") if e.get("fault") else Text("-", style="dim"),
            Text("yes", style="bold red") if e.get("degraded") else Text("no", style="dim"),
        )
    return table


def circuit_grid(entries: Sequence[Entry]) -> Table:
    """Rows: the replica whose view this is; columns: the peer it guards."""
    rows = by_id(entries)
    ids = sorted(rows)
    table = Table(
        title="circuits (row: replica, column: its view of a peer)",
        title_justify="left",
        expand=False,
        show_lines=True,
        pad_edge=False,
    )
    table.add_column("from\\to", justify="right")
    for pid in ids:
        table.add_column(f"peer {pid}", justify="center")
    for rid in ids:
        e = rows[rid]
        row: list[RenderableType] = [str(rid)]
        peers = peers_of(e)
        for pid in ids:
            if pid == rid:
                row.append(Text("·", style="dim"))
            elif not e.get("reachable"):
                row.append(Text("?", style="dim"))
            elif str(pid) not in peers:
                row.append(Text("-", style="dim"))
            else:
                row.append(circuit_cell(peers[str(pid)]))
        table.add_row(*row)
    return table


def circuit_cell(info: Mapping[str, Any]) -> Text:
    state = str(info.get("circuit", "?"))
    style = CIRCUIT_STYLE.get(state, "magenta")
    cell = Text(state.replace("_", "-"), style=style)
    queued = info.get("queued", "?")
    trips = info.get("trips", "?")
    cell.append(
        f"\n{_ms(info.get('timeout_ms'))} q{queued} t{trips}",
        style="dim" if state == "closed" else style,
    )
    return cell


def events_table(events: Sequence[Event], shown: int = SHOWN_EVENTS) -> Table:
    table = Table(
        title="recent events (newest first)",
        title_justify="left",
        show_header=False,
        expand=False,
        box=None,
        pad_edge=False,
        min_width=60,  # keeps the title on one line while the list is empty
    )
    table.add_column("at", justify="right", style="dim")
    table.add_column("event")
    recent = list(events)[-shown:][::-1]
    if not recent:
        table.add_row("", Text("none yet", style="dim"))
    for ev in recent:
        table.add_row(f"+{ev.at:.1f}s", Text(ev.text, style=EVENT_STYLE.get(ev.kind, "")))
    return table


def header(entries: Sequence[Entry], now: float, title: str = "bft-node watch") -> Text:
    rows = by_id(entries)
    up = sum(1 for e in rows.values() if e.get("reachable"))
    view = max_view(rows)
    primaries = {
        int_field(e, "primary")
        for e in rows.values()
        if is_live(e) and int_field(e, "view") == view
    }
    text = Text(title, style="bold")
    text.append(
        f"   +{now:.1f}s   reachable {up}/{len(rows)}",
        style="green" if up == len(rows) else "bold red",
    )
    if view is not None:
        who = ",".join(str(p) for p in sorted(primaries))
        text.append(f"   view {view} primary {who}   max executed {max_executed(rows)}")
    text.append("   Ctrl-C quits", style="dim")
    return text


def render(
    entries: Sequence[Entry],
    events: Sequence[Event],
    *,
    now: float,
    title: str = "bft-node watch",
    shown_events: int = SHOWN_EVENTS,
) -> RenderableType:
    """The whole dashboard for one snapshot; `events` oldest first (shown newest first)."""
    return Group(
        header(entries, now, title),
        replica_table(entries),
        circuit_grid(entries),
        events_table(events, shown_events),
    )


# ---------------------------------------------------------------- the loop


class Watcher:
    """Polls a cluster's /status pages and remembers what changed."""

    def __init__(
        self,
        eps: Sequence[Endpoint],
        *,
        fetch_timeout: float = FETCH_TIMEOUT_S,
        max_events: int = MAX_EVENTS,
        lag_threshold: int = 100,
        title: str = "bft-node watch",
    ) -> None:
        self.endpoints = list(eps)
        self.fetch_timeout = fetch_timeout
        self.lag_threshold = lag_threshold
        self.title = title
        self.entries: list[Entry] = []
        self.events: deque[Event] = deque(maxlen=max_events)
        self._start: float | None = None
        self._polled = False

    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        return trio.current_time() - self._start

    async def poll(self) -> list[Event]:
        """Fetch every replica's status once; returns (and records) the new events."""
        if self._start is None:
            self._start = trio.current_time()
        entries = await collect(self.endpoints, self.fetch_timeout)
        new = diff_snapshots(
            self.entries if self._polled else None,
            entries,
            self.elapsed(),
            lag_threshold=self.lag_threshold,
        )
        self.entries = entries
        self._polled = True
        self.events.extend(new)
        return new

    def renderable(self) -> RenderableType:
        return render(self.entries, self.events, now=self.elapsed(), title=self.title)


async def run_watch(
    watcher: Watcher,
    live: Live | None = None,
    *,
    interval: float = REFRESH_S,
    duration: float | None = None,
) -> None:
    """Poll and redraw every `interval` s until cancelled, or for `duration` s if given."""
    with trio.move_on_after(duration if duration is not None else float("inf")):
        while True:
            deadline = trio.current_time() + interval
            await watcher.poll()
            if live is not None:
                live.update(watcher.renderable(), refresh=True)
            await trio.sleep_until(deadline)


async def _watch_until_signal(watcher: Watcher, live: Live) -> None:
    """run_watch until SIGTERM/SIGHUP (Ctrl-C arrives as KeyboardInterrupt)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            await run_watch(watcher, live)


def cmd_watch(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    interval = cfg.section("consensus")["checkpoint_interval"]
    watcher = Watcher(endpoints(cfg), lag_threshold=interval, title=f"bft-node watch  {cfg.path}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    try:
        with Live(watcher.renderable(), console=console, auto_refresh=False) as live:
            run_trio(_watch_until_signal, watcher, live)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        pass
    return 0
