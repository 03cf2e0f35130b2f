"""`bft-node watch`: a live terminal dashboard of a cluster, refreshed about twice a second.

Three pure pieces and one loop:

- `diff_snapshots(prev, cur, at)` turns two successive `status.collect` results into
  `Event`s (replica unreachable/back, view change, circuit opened/half-open/closed,
  degraded/recovered, state transfer, caught up);
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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from node.cli.cluster import run_trio
from node.cli.cluster.fetch import Endpoint, endpoints
from node.cli.cluster.status import CIRCUIT_STYLE, Entry, collect, short_digest
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


@attrs.frozen
class Event:
    """Something that changed between two snapshots; `at` is seconds since the start."""

    at: float
    kind: str
    text: str
    replica: int | None = None
    peer: str | None = None


def _by_id(entries: Iterable[Entry]) -> dict[int, Entry]:
    return {e["id"]: e for e in entries if isinstance(e.get("id"), int)}


def _int(entry: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = entry.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _peers(entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    peers = entry.get("peers")
    if not isinstance(peers, dict):
        return {}
    return {str(k): v for k, v in peers.items() if isinstance(v, dict)}


def _peer_order(peer: str) -> tuple[int, str]:
    return (int(peer), "") if peer.isdigit() else (1 << 30, peer)


def _live(entry: Mapping[str, Any]) -> bool:
    """Reachable and past its start-up (a starting replica has no view or seq yet)."""
    return bool(entry.get("reachable")) and not entry.get("starting")


def _max_view(entries: Mapping[int, Entry]) -> int | None:
    views = [_int(e, "view") for e in entries.values() if _live(e)]
    return max(views) if views else None


def _max_executed(entries: Mapping[int, Entry]) -> int:
    seqs = [_int(e, "last_executed") for e in entries.values() if _live(e)]
    return max(seqs, default=0)


def diff_snapshots(
    prev: Sequence[Entry] | None,
    cur: Sequence[Entry],
    at: float,
    *,
    lag_threshold: int = 100,
) -> list[Event]:
    """The events that explain how `prev` became `cur` (both `status.collect` results).

    With no `prev` (the first snapshot), only replicas that are already down are reported.
    Events come in a fixed order: cluster-wide first, then by replica id, then by peer.
    """
    before = _by_id(prev or ())
    after = _by_id(cur)
    events: list[Event] = []

    old_view, new_view = _max_view(before), _max_view(after)
    if old_view is not None and new_view is not None and new_view > old_view:
        primaries = sorted(
            {_int(e, "primary") for e in after.values() if _live(e) and _int(e, "view") == new_view}
        )
        who = ",".join(str(p) for p in primaries) or "?"
        events.append(
            Event(at, "view_change", f"view change {old_view} → {new_view}, primary {who}")
        )

    old_max, new_max = _max_executed(before), _max_executed(after)
    for rid in sorted(after):
        c = after[rid]
        p = before.get(rid)
        if not c.get("reachable"):
            if p is None or p.get("reachable"):
                why = c.get("error", "no answer")
                events.append(Event(at, "unreachable", f"replica {rid} unreachable ({why})", rid))
            continue
        if p is None:
            continue
        if not _live(c):  # reachable, still starting
            if not p.get("reachable"):
                events.append(Event(at, "reachable", f"replica {rid} back (starting)", rid))
            continue
        if not _live(p):
            how = "ready" if p.get("reachable") else "back"
            events.append(
                Event(
                    at,
                    "reachable",
                    f"replica {rid} {how} (view {_int(c, 'view')}, "
                    f"last executed {_int(c, 'last_executed')})",
                    rid,
                )
            )
            continue
        events.extend(_circuit_events(rid, p, c, at))
        if bool(c.get("degraded")) != bool(p.get("degraded")):
            if c.get("degraded"):
                events.append(
                    Event(
                        at,
                        "degraded",
                        f"replica {rid} degraded: too many circuits open to reach a quorum",
                        rid,
                    )
                )
            else:
                events.append(Event(at, "recovered", f"replica {rid} no longer degraded", rid))
        old_st, new_st = p.get("state_transfers"), c.get("state_transfers")
        if isinstance(old_st, int) and isinstance(new_st, int) and new_st > old_st:
            events.append(
                Event(
                    at,
                    "state_transfer",
                    f"replica {rid} state transfer to seq {_int(c, 'stable_checkpoint')}",
                    rid,
                )
            )
        was_behind = old_max - _int(p, "last_executed") >= lag_threshold
        is_behind = new_max - _int(c, "last_executed") >= lag_threshold
        if was_behind and not is_behind:
            events.append(
                Event(
                    at,
                    "caught_up",
                    f"replica {rid} caught up: last executed "
                    f"{_int(p, 'last_executed')} → {_int(c, 'last_executed')}",
                    rid,
                )
            )
    return events


def _circuit_events(rid: int, p: Entry, c: Entry, at: float) -> list[Event]:
    old_peers, new_peers = _peers(p), _peers(c)
    out = []
    for peer in sorted(new_peers, key=_peer_order):
        info = new_peers[peer]
        was = str(old_peers.get(peer, {}).get("circuit", "closed"))
        now = str(info.get("circuit", "closed"))
        if was == now:
            continue
        kind = f"circuit_{now}" if now in CIRCUIT_STYLE else "circuit_open"
        extra = f", trips {info['trips']}" if isinstance(info.get("trips"), int) else ""
        verb = {"open": "opened", "closed": "closed", "half_open": "half-open (probing)"}
        text = f"replica {rid} → peer {peer}: circuit {verb.get(now, now)}{extra}"
        out.append(Event(at, kind, text, rid, peer))
    return out


# ---------------------------------------------------------------- rendering (pure)


def _ms(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "?"
    return f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def replica_table(entries: Sequence[Entry]) -> Table:
    by_id = _by_id(entries)
    top = _max_executed(by_id)
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
    for rid in sorted(by_id):
        e = by_id[rid]
        if not e.get("reachable"):
            table.add_row(
                str(rid),
                Text("DOWN", style="bold red"),
                *[""] * 7,
                Text(str(e.get("error", ""))[:40], style="red"),
            )
            continue
        if not _live(e):
            fault = Text(str(e["fault"]), style="magenta") if e.get("fault") else ""
            table.add_row(str(rid), Text("starting", style="yellow"), *[""] * 6, fault, "")
            continue
        is_primary = _int(e, "primary", -1) == rid
        lag = top - _int(e, "last_executed")
        table.add_row(
            str(rid),
            Text("up", style="green"),
            str(_int(e, "view")),
            Text("primary", style="bold cyan")
            if is_primary
            else Text(f"backup of {_int(e, 'primary')}", style="dim"),
            str(_int(e, "last_executed")),
            Text(str(lag), style="yellow" if lag else "dim"),
            str(_int(e, "stable_checkpoint")),
            short_digest(e),
            Text(str(e["fault"]), style="magenta") if e.get("fault") else Text("-", style="dim"),
            Text("yes", style="bold red") if e.get("degraded") else Text("no", style="dim"),
        )
    return table


def circuit_grid(entries: Sequence[Entry]) -> Table:
    """Rows: the replica whose view this is; columns: the peer it guards."""
    by_id = _by_id(entries)
    ids = sorted(by_id)
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
        e = by_id[rid]
        row: list[RenderableType] = [str(rid)]
        peers = _peers(e)
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
    by_id = _by_id(entries)
    up = sum(1 for e in by_id.values() if e.get("reachable"))
    view = _max_view(by_id)
    primaries = {_int(e, "primary") for e in by_id.values() if _live(e) and _int(e, "view") == view}
    text = Text(title, style="bold")
    text.append(
        f"   +{now:.1f}s   reachable {up}/{len(by_id)}",
        style="green" if up == len(by_id) else "bold red",
    )
    if view is not None:
        who = ",".join(str(p) for p in sorted(primaries))
        text.append(f"   view {view} primary {who}   max executed {_max_executed(by_id)}")
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
