"""Rejoin scenarios on real `bft-node run` processes, shared by the slow tests and
`benches/rejoin.py`: a kill loop, a flood of clients, and the checks they end with.

- `Writers`: client sessions putting fresh keys through consensus, remembering every
  acknowledged write (`verify` reads each one back with an ordered get).
- `kill_loop`: SIGKILL a random replica (the primary about one time in three), revive it
  after 1-3 s, and time how long until it executes at the cluster's head (its last
  executed at least the others' head when it was revived, in the others' view, not in a
  view change); optionally end by killing all replicas at once.
- `flood`: `bft-node load --clients C` plus garbage connections for a while; counts view
  changes during and after it, times the first put after it, and reads replica memory.
- `converged`: every replica up, one view, one last executed, one state digest.

Every wait is bounded; traffic stays on the addresses of the cluster's own config.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from node.app.kv import decode_result, op_get, op_put
from node.cli.cluster.fetch import fetch_json
from node.client.pool import ClientError, ClientPool, Session
from node.config import ClusterConfig

Entry = dict[str, Any]


async def statuses(cfg: ClusterConfig, timeout: float = 0.5) -> list[Entry]:
    """Every replica's /status; an unreachable one as `{"id": i, "reachable": False}`."""
    out: list[Entry] = [{"id": r.id, "reachable": False} for r in cfg.replicas]

    async def one(i: int, url: str) -> None:
        try:
            out[i] = await fetch_json(url, timeout=timeout)
        except Exception:  # noqa: BLE001 - down or busy: reported as unreachable
            pass

    async with trio.open_nursery() as nursery:
        for i, r in enumerate(cfg.replicas):
            nursery.start_soon(one, i, f"http://{r.host}:{r.http_port}/status")
    return out


def up(entries: Sequence[Entry]) -> list[Entry]:
    return [e for e in entries if e.get("reachable", True) and "view" in e]


def cluster_view(entries: Sequence[Entry], exclude: int | None = None) -> int | None:
    """The view most live replicas (other than `exclude`) report, when not changing."""
    views = [e["view"] for e in up(entries) if e["id"] != exclude and not e.get("in_view_change")]
    return max(set(views), key=views.count) if views else None


def primary(entries: Sequence[Entry]) -> int | None:
    view = cluster_view(entries)
    n = len(entries)
    return None if view is None else view % n


def head(entries: Sequence[Entry], exclude: int | None = None) -> int:
    return max((e["last_executed"] for e in up(entries) if e["id"] != exclude), default=0)


def at_head(entries: Sequence[Entry], victim: int, mark: int) -> bool:
    """`victim` executed at least `mark`, in the others' view, not changing views."""
    me = entries[victim]
    if not me.get("reachable", True) or "view" not in me:
        return False
    return (
        me["last_executed"] >= mark
        and not me.get("in_view_change")
        and me["view"] == cluster_view(entries, exclude=victim)
    )


def converged(entries: Sequence[Entry]) -> bool:
    live = up(entries)
    if len(live) != len(entries):
        return False
    marks = {(e["view"], e["last_executed"], e["state_digest"]) for e in live}
    return len(marks) == 1 and not any(e.get("in_view_change") for e in live)


async def wait_converged(cfg: ClusterConfig, limit_s: float) -> tuple[bool, list[Entry]]:
    entries: list[Entry] = []
    with trio.move_on_after(limit_s):
        while True:
            entries = await statuses(cfg)
            if converged(entries):
                return True, entries
            await trio.sleep(0.2)
    return False, entries


class Writers:
    """Sessions that put fresh keys in a loop and remember what was acknowledged."""

    def __init__(self, pool: ClientPool, sessions: int, prefix: str = "w") -> None:
        self.pool = pool
        self.sessions = sessions
        self.prefix = prefix
        self.acked: dict[str, str] = {}
        self.errors = 0
        #: (issued, acknowledged) times of every acknowledged write
        self.acks: list[tuple[float, float]] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for i in range(self.sessions):
                nursery.start_soon(self._one, i)
            task_status.started()

    async def _one(self, i: int) -> None:
        session = Session(self.pool)
        n = 0
        while True:
            n += 1
            key, value = f"{self.prefix}{i}-{n}", f"v{n}"
            issued = trio.current_time()
            try:
                await session.invoke(op_put(key, value), 10.0)
            except ClientError:
                self.errors += 1
                await trio.sleep(0.1)
                continue
            self.acked[key] = value
            self.acks.append((issued, trio.current_time()))

    def first_ack_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first acknowledgement of a write issued after it
        (writes in flight at `moment` may complete on the old path)."""
        later = [done for issued, done in self.acks if issued > moment]
        return min(later) - moment if later else None

    async def verify(self, parallel: int = 32) -> list[str]:
        """Read every acknowledged write back (ordered gets); the keys that differ."""
        keys = list(self.acked)
        wrong: list[str] = []

        async def reader(part: list[str]) -> None:
            session = Session(self.pool)
            for key in part:
                for _ in range(3):
                    try:
                        status, value = decode_result(await session.invoke(op_get(key), 10.0))
                        break
                    except ClientError:
                        await trio.sleep(0.2)
                else:
                    wrong.append(key)
                    continue
                if status != "ok" or value != self.acked[key].encode():
                    wrong.append(key)

        async with trio.open_nursery() as nursery:
            for k in range(parallel):
                nursery.start_soon(reader, keys[k::parallel])
        return wrong


async def put_once(pool: ClientPool, timeout_s: float) -> float | None:
    """Seconds one fresh put took, or None if it did not complete in `timeout_s`."""
    started = trio.current_time()
    try:
        await Session(pool).invoke(op_put(f"probe-{time.monotonic_ns()}", "x"), timeout_s)
    except ClientError:
        return None
    return trio.current_time() - started


# ------------------------------------------------------------------------ kill loop


async def kill_loop(
    cluster: Any,
    cfg: ClusterConfig,
    rounds: int,
    *,
    seed: int = 1,
    down_s: tuple[float, float] = (1.0, 3.0),
    head_limit_s: float = 15.0,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Kill and revive random replicas; one dict per round with `to_head_s` (None if the
    revived replica was not at the head within `head_limit_s`)."""
    rng = random.Random(seed)
    out = []
    for rnd in range(rounds):
        entries = await statuses(cfg)
        p = primary(entries)
        others = [i for i in range(cfg.n) if i != p]
        victim = p if p is not None and rng.random() < 1 / 3 else rng.choice(others)
        await cluster.kill(victim)
        await trio.sleep(rng.uniform(*down_s))
        mark = head(await statuses(cfg), exclude=victim)
        await cluster.revive(victim)
        revived = trio.current_time()
        to_head = None
        with trio.move_on_after(head_limit_s):
            while True:
                entries = await statuses(cfg, timeout=0.3)
                if at_head(entries, victim, mark):
                    to_head = trio.current_time() - revived
                    break
                await trio.sleep(0.05)
        row = {
            "round": rnd,
            "victim": victim,
            "was_primary": victim == p,
            "head_at_revive": mark,
            "to_head_s": None if to_head is None else round(to_head, 3),
        }
        out.append(row)
        log(f"kill loop round {rnd}: {json.dumps(row)}")
    return out


async def kill_all(cluster: Any, cfg: ClusterConfig, pool: ClientPool) -> dict[str, Any]:
    """SIGKILL every replica at once, start them all again, time the first commit."""
    for i in range(cfg.n):
        await cluster.kill(i)
    for i in range(cfg.n):
        await cluster.revive(i)
    revived = trio.current_time()
    took = None
    with trio.move_on_after(30):
        while took is None:
            took = await put_once(pool, 5.0)
    return {"first_put_after_s": None if took is None else round(trio.current_time() - revived, 3)}


# ------------------------------------------------------------------------ flood


def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def garbage(cfg: ClusterConfig, until: float, rng: random.Random) -> int:
    """Connections that send junk to the replicas' peer ports until `until`."""
    sent = 0
    while trio.current_time() < until:
        r = rng.choice(cfg.replicas)
        try:
            with trio.move_on_after(1.0):
                stream = await trio.open_tcp_stream(r.host, r.port)
                async with stream:
                    await stream.send_all(rng.randbytes(rng.randint(1, 4096)))
                    sent += 1
        except OSError:
            pass
        await trio.sleep(0.05)
    return sent


def view_change_lines(directory: Path, limit: int = 20) -> list[str]:
    """The replicas' `event=view_change_started` log lines (the reason of each), to say
    why a view changed when a check fails."""
    lines: list[str] = []
    for path in sorted((Path(directory) / "logs").glob("replica-*.log")):
        with open(path, errors="replace") as f:
            lines += [ln.strip()[-160:] for ln in f if "event=view_change_started" in ln]
    return lines[-limit:]


async def _load_with_garbage(cfg: ClusterConfig, clients: int, duration_s: float) -> dict[str, Any]:
    """Run `bft-node load` with garbage connections beside it; returns its JSON report."""
    cmd = [sys.executable, "-m", "node", "load", "--config", str(cfg.path)]
    cmd += ["--clients", str(clients), "--duration", str(duration_s), "--json"]
    async with trio.open_nursery() as nursery:
        until = trio.current_time() + duration_s
        nursery.start_soon(garbage, cfg, until, random.Random(7))
        with trio.fail_after(duration_s + 60):
            proc = await trio.run_process(
                cmd, capture_stdout=True, capture_stderr=True, check=False
            )
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
    load = json.loads(lines[-1]) if lines else {"error": proc.stderr.decode()[-500:]}
    return load


async def _first_put_after(cfg: ClusterConfig, ended: float, after_s: float) -> float | None:
    """Seconds from `ended` to the first put that succeeds; then watch until `after_s`."""
    pool = ClientPool(cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with trio.move_on_after(5):
            await pool.wait_connected(cfg.n)
        first_put = None
        with trio.move_on_after(10):
            while first_put is None:
                if await put_once(pool, 2.0) is not None:
                    first_put = trio.current_time() - ended
        await trio.sleep(max(0.0, after_s - (trio.current_time() - ended)))
        nursery.cancel_scope.cancel()
    return first_put


def _view_changes(a: list[Any], b: list[Any]) -> int:
    """The most views any one replica moved on between the snapshots `a` and `b`."""
    return max(
        (y - x for x, y in zip(a, b, strict=True) if x is not None and y is not None), default=0
    )


async def flood(
    cluster: Any,
    cfg: ClusterConfig,
    clients: int,
    duration_s: float,
    *,
    after_s: float = 15.0,
    log: Any = print,
) -> dict[str, Any]:
    """`bft-node load --clients C --duration S` with garbage connections beside it; then
    `after_s` seconds of watching. Returns view changes during and after, the first put
    after the flood, and each replica's memory before, at the end and after."""
    pids = [cluster.replicas[i].pid for i in range(cfg.n)]
    rss_idle = [rss_kib(p) for p in pids]
    views_before = [e.get("view") for e in await statuses(cfg)]
    load = await _load_with_garbage(cfg, clients, duration_s)
    ended = trio.current_time()
    rss_end = [rss_kib(p) for p in pids]
    views_end = [e.get("view") for e in await statuses(cfg)]
    first_put = await _first_put_after(cfg, ended, after_s)
    views_after = [e.get("view") for e in await statuses(cfg)]
    rss_after = [rss_kib(p) for p in pids]

    result: dict[str, Any] = {
        "load": load,
        "view_changes_during": _view_changes(views_before, views_end),
        "view_changes_after": _view_changes(views_end, views_after),
        "first_put_after_s": None if first_put is None else round(first_put, 3),
        "rss_idle_kib": rss_idle,
        "rss_end_kib": rss_end,
        "rss_after_kib": rss_after,
        "view_change_log": view_change_lines(cluster.directory),
    }
    log(f"flood: {json.dumps(result)}")
    return result
