"""What changed between two status snapshots of a cluster, as events (pure).

`diff_snapshots(prev, cur, at)` turns two successive `status.collect` results into
`Event`s: replica unreachable/back, view change, circuit opened/half-open/closed,
degraded/recovered, state transfer, caught up. `bft-node watch` and the demo show them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from node.cli.cluster.status import CIRCUIT_STYLE, Entry


@attrs.frozen
class Event:
    """Something that changed between two snapshots; `at` is seconds since the start."""

    at: float
    kind: str
    text: str
    replica: int | None = None
    peer: str | None = None


def by_id(entries: Iterable[Entry]) -> dict[int, Entry]:
    return {e["id"]: e for e in entries if isinstance(e.get("id"), int)}


def int_field(entry: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = entry.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def peers_of(entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    peers = entry.get("peers")
    if not isinstance(peers, dict):
        return {}
    return {str(k): v for k, v in peers.items() if isinstance(v, dict)}


def _peer_order(peer: str) -> tuple[int, str]:
    return (int(peer), "") if peer.isdigit() else (1 << 30, peer)


def is_live(entry: Mapping[str, Any]) -> bool:
    """Reachable and past its start-up (a starting replica has no view or seq yet)."""
    return bool(entry.get("reachable")) and not entry.get("starting")


def max_view(entries: Mapping[int, Entry]) -> int | None:
    views = [int_field(e, "view") for e in entries.values() if is_live(e)]
    return max(views) if views else None


def max_executed(entries: Mapping[int, Entry]) -> int:
    seqs = [int_field(e, "last_executed") for e in entries.values() if is_live(e)]
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
    before = by_id(prev or ())
    after = by_id(cur)
    events = _view_change(before, after, at)
    lag = _Lag(max_executed(before), max_executed(after), lag_threshold)
    for rid in sorted(after):
        c = after[rid]
        p = before.get(rid)
        arrival = _arrival(rid, p, c, at)
        if arrival is not None:
            events.extend(arrival)
            continue
        assert p is not None
        events.extend(_circuit_events(rid, p, c, at))
        events.extend(_replica_changes(rid, p, c, at, lag))
    return events


def _view_change(before: Mapping[int, Entry], after: Mapping[int, Entry], at: float) -> list[Event]:
    old_view, new_view = max_view(before), max_view(after)
    if old_view is None or new_view is None or new_view <= old_view:
        return []
    primaries = sorted(
        {
            int_field(e, "primary")
            for e in after.values()
            if is_live(e) and int_field(e, "view") == new_view
        }
    )
    who = ",".join(str(p) for p in primaries) or "?"
    return [Event(at, "view_change", f"view change {old_view} → {new_view}, primary {who}")]


def _arrival(rid: int, p: Entry | None, c: Entry, at: float) -> list[Event] | None:
    """Events of a replica that went, came back or is starting; None when it was and is
    live (its circuits and progress are compared then)."""
    if not c.get("reachable"):
        if p is None or p.get("reachable"):
            why = c.get("error", "no answer")
            return [Event(at, "unreachable", f"replica {rid} unreachable ({why})", rid)]
        return []
    if p is None:
        return []
    if not is_live(c):  # reachable, still starting
        if not p.get("reachable"):
            return [Event(at, "reachable", f"replica {rid} back (starting)", rid)]
        return []
    if not is_live(p):
        how = "ready" if p.get("reachable") else "back"
        text = (
            f"replica {rid} {how} (view {int_field(c, 'view')}, "
            f"last executed {int_field(c, 'last_executed')})"
        )
        return [Event(at, "reachable", text, rid)]
    return None


@attrs.frozen
class _Lag:
    """The cluster's highest executed seq before and after, and what counts as behind."""

    old_max: int
    new_max: int
    threshold: int


def _replica_changes(rid: int, p: Entry, c: Entry, at: float, lag: _Lag) -> list[Event]:
    """Degraded mode, state transfers and catching up of a replica live in both."""
    events = []
    if bool(c.get("degraded")) != bool(p.get("degraded")):
        if c.get("degraded"):
            text = f"replica {rid} degraded: too many circuits open to reach a quorum"
            events.append(Event(at, "degraded", text, rid))
        else:
            events.append(Event(at, "recovered", f"replica {rid} no longer degraded", rid))
    old_st, new_st = p.get("state_transfers"), c.get("state_transfers")
    if isinstance(old_st, int) and isinstance(new_st, int) and new_st > old_st:
        text = f"replica {rid} state transfer to seq {int_field(c, 'stable_checkpoint')}"
        events.append(Event(at, "state_transfer", text, rid))
    was_behind = lag.old_max - int_field(p, "last_executed") >= lag.threshold
    is_behind = lag.new_max - int_field(c, "last_executed") >= lag.threshold
    if was_behind and not is_behind:
        text = (
            f"replica {rid} caught up: last executed "
            f"{int_field(p, 'last_executed')} → {int_field(c, 'last_executed')}"
        )
        events.append(Event(at, "caught_up", text, rid))
    return events


def _circuit_events(rid: int, p: Entry, c: Entry, at: float) -> list[Event]:
    old_peers, new_peers = peers_of(p), peers_of(c)
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
