"""Before a local cluster starts: replicas a dead launcher left running are reaped, the
configured ports are checked free (with one clear line naming the one that is not), and
a replica's log tail is at hand for the error when it fails to come up.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from node.cli.cluster.control import read_state, remove_state
from node.config import ClusterConfig
from node.errors import UserError

Echo = Callable[[str], None]


def cmdline(pid: int) -> list[str] | None:
    """The command line of process `pid`, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


async def reap_stale(directory: Path, echo: Echo, timeout: float = 5.0) -> list[int]:
    """SIGKILL the replicas a dead launcher left behind (those whose command line still
    matches the state file) and wait until they are gone; returns their pids."""
    state = read_state(directory)
    killed: dict[int, list[str]] = {}
    for rep in (state or {}).get("replicas", []):
        pid, cmd = rep.get("pid"), rep.get("cmd")
        if rep.get("state") != "running" or not isinstance(pid, int) or not cmd:
            continue
        if cmdline(pid) != cmd:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed[pid] = cmd
    if killed:
        echo(f"killed replica(s) left running by a launcher that died: pids {sorted(killed)}")
    with trio.move_on_after(timeout):  # a dead process (even a zombie) has no cmdline
        while any(cmdline(pid) == cmd for pid, cmd in killed.items()):
            await trio.sleep(0.05)
    remove_state(directory)
    return sorted(killed)


def _is_local(host: str) -> bool:
    return host in ("localhost", "0.0.0.0", "::", "::1", "") or host.startswith("127.")


def check_ports_free(cfg: ClusterConfig, ids: Sequence[int]) -> None:
    """UserError naming the first configured local port that something else holds."""
    for r in cfg.replicas:
        if r.id not in ids or not _is_local(r.host):
            continue
        for port, what in ((r.port, "peer"), (r.http_port, "HTTP")):
            family = socket.AF_INET6 if ":" in r.host else socket.AF_INET
            host = "127.0.0.1" if r.host == "localhost" else r.host
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as exc:
                    why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                    raise UserError(
                        f"port {port} ({what} port of replica {r.id}) on {host} is {why}; "
                        "stop what holds it, or init the cluster with other "
                        "--base-port/--http-base-port"
                    ) from None


def log_tail(path: Path, lines: int = 5) -> str:
    """The last `lines` lines of a replica's log, indented, for an error message."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:])
