"""How a running launcher and the `cluster kill/revive` commands find and talk to each other.

Three things in the cluster directory, all owned by the launcher (`LocalCluster`):

- `DIR/cluster.lock`: an exclusive `flock` held for the launcher's whole life. The kernel
  drops it when the process dies, however it dies, so "is a launcher running here?" never
  depends on a stale pid file;
- `DIR/cluster.state.json`: pids, states and URLs, rewritten atomically by the launcher
  (its only writer) whenever something changes; other tools only read it;
- a UNIX stream socket (`DIR/control.sock`, or a short temp path when DIR is too deep for
  `sun_path`; the state file names it, mode 0600) speaking one JSON line each way:
  `{"op": "kill" | "revive" | "ping", "id": I}` -> `{"ok": true, "pid": P}` or
  `{"ok": false, "error": "one line"}`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from node.config import ConfigError
from node.errors import UserError

STATE_FILE = "cluster.state.json"
LOCK_FILE = "cluster.lock"
SOCKET_FILE = "control.sock"
CONTROL_TIMEOUT_S = 15.0
MAX_LINE = 4096
_MAX_SUN_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin

# (op, replica id) -> pid; raises UserError/ConfigError for a request it refuses.
ControlHandler = Callable[[str, int], Awaitable[int]]


class ClusterLock:
    """An exclusive flock on DIR/cluster.lock: one launcher per cluster directory."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"a `bft-node cluster up` (pid {holder}) is already running for "
                f"{self.path.parent}; stop it first (Ctrl-C in its terminal)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def launcher_running(directory: Path) -> bool:
    """True if some process holds DIR's launcher lock."""
    try:
        fd = os.open(Path(directory) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_state(directory: Path) -> dict[str, Any] | None:
    """DIR's state file, or None if there is none or it is unreadable."""
    try:
        doc = json.loads((Path(directory) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_state(directory: Path, doc: Mapping[str, Any]) -> None:
    """Replace DIR's state file atomically (readers never see half a file)."""
    path = Path(directory) / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def remove_state(directory: Path) -> None:
    (Path(directory) / STATE_FILE).unlink(missing_ok=True)


async def read_line(stream: trio.abc.ReceiveStream) -> bytes | None:
    """One newline-terminated line of at most MAX_LINE bytes, or None."""
    buf = bytearray()
    while b"\n" not in buf and len(buf) <= MAX_LINE:
        chunk = await stream.receive_some(MAX_LINE)
        if not chunk:
            break
        buf += chunk
    line, sep, _ = bytes(buf).partition(b"\n")
    return line if sep and len(line) <= MAX_LINE else None


async def _answer(line: bytes | None, handler: ControlHandler) -> dict[str, Any]:
    try:
        req = json.loads(line or b"")
        op, rid = req["op"], req.get("id")
    except (ValueError, TypeError, KeyError):
        return {"ok": False, "error": "bad control request"}
    if op == "ping":
        return {"ok": True, "pid": os.getpid()}
    if op not in ("kill", "revive"):
        return {"ok": False, "error": f"unknown control op {op!r}"}
    if not isinstance(rid, int) or isinstance(rid, bool):
        return {"ok": False, "error": "control request needs an integer id"}
    try:
        return {"ok": True, "pid": await handler(op, rid)}
    except (UserError, ConfigError, OSError) as exc:
        return {"ok": False, "error": str(exc)}


async def serve_control(
    directory: Path,
    handler: ControlHandler,
    *,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket until cancelled; `task_status.started(socket_path)`."""
    temp_dir: Path | None = None
    path = Path(directory) / SOCKET_FILE
    if len(os.fsencode(path)) > _MAX_SUN_PATH:
        temp_dir = Path(tempfile.mkdtemp(prefix="bft-node-"))
        path = temp_dir / SOCKET_FILE
    path.unlink(missing_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        os.chmod(path, 0o600)  # created 0755 under the usual umask: nobody else may connect
        sock.listen(16)

        async def one(stream: trio.SocketStream) -> None:
            async with stream:
                with trio.move_on_after(CONTROL_TIMEOUT_S):
                    reply = await _answer(await read_line(stream), handler)
                    await stream.send_all(json.dumps(reply).encode() + b"\n")

        task_status.started(path)
        await trio.serve_listeners(one, [trio.SocketListener(sock)])
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        if temp_dir is not None:
            temp_dir.rmdir()


async def send_control(directory: Path, op: str, replica_id: int) -> dict[str, Any]:
    """Ask the launcher running for `directory` to do `op`; UserError if none runs or it
    refuses (its one-line reason)."""
    state = read_state(directory)
    if not launcher_running(directory) or state is None or not state.get("control_socket"):
        raise UserError(f"no `bft-node cluster up` is running for {directory}")
    try:
        with trio.fail_after(CONTROL_TIMEOUT_S):
            stream = await trio.open_unix_socket(state["control_socket"])
            async with stream:
                request = json.dumps({"op": op, "id": replica_id}).encode() + b"\n"
                await stream.send_all(request)
                line = await read_line(stream)
    except trio.TooSlowError:
        raise UserError(
            f"the launcher of {directory} did not answer in {CONTROL_TIMEOUT_S:g}s"
        ) from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise UserError(f"cannot reach the launcher of {directory}: {exc}") from None
    try:
        reply = json.loads(line or b"")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise UserError(f"the launcher of {directory} sent no usable reply")
    if not reply.get("ok"):
        raise UserError(str(reply.get("error", "refused")))
    return reply
