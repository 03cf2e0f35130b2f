"""The local cluster launcher: every replica as a child process of one `cluster up`.

`LocalCluster` (an async context manager) owns the replicas of one cluster directory:

- entering takes an exclusive `flock` on `DIR/cluster.lock`, held for the whole run and
  released by the kernel even if the process dies, so a second launcher on the same
  directory is refused with one clear line;
- `start()` inits DIR if it has no `cluster.toml`, checks the ports are free and runs
  each replica (`python -m node run ...`) with stdout/stderr appended to
  `DIR/logs/replica-I.log`, in its own session so a terminal's Ctrl-C reaches only the
  launcher, which then stops them in order;
- `kill(i)` SIGKILLs a replica, `revive(i)` starts it again on its own data dir; every
  replica, revived or not, stays a child supervised by the launcher's nursery, so
  `stop()` (SIGTERM, a grace period, then SIGKILL) always reaches all of them;
- the launcher writes `DIR/cluster.state.json` (pids, states, faults, URLs) whenever
  something changes, and serves a UNIX socket (its path is in the state file) through
  which `bft-node cluster kill/revive` in another terminal ask it to act.

A launcher that died without cleaning up (SIGKILL) leaves a state file but no lock; the
next one kills the replicas that file names, if they are still the same commands.
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from node.cli.cluster.control import (
    ClusterLock,
    remove_state,
    serve_control,
    write_state,
)
from node.cli.cluster.fetch import Endpoint, healthy
from node.cli.cluster.preflight import check_ports_free, log_tail, reap_stale
from node.config import ClusterConfig, init_cluster, load_config
from node.errors import UserError

GRACE_S = 5.0

CommandFactory = Callable[[ClusterConfig, int, str | None], list[str]]
Echo = Callable[[str], None]


def replica_command(cfg: ClusterConfig, replica_id: int, fault: str | None) -> list[str]:
    """The command line of one replica process."""
    cmd = [sys.executable, "-m", "node", "run", "--config", str(cfg.path), "--id", str(replica_id)]
    if fault:
        cmd += ["--fault", fault]
    return cmd


class ProcessState(enum.StrEnum):
    """A replica process as the launcher sees it; the values go into the state file."""

    RUNNING = "running"
    KILLED = "killed"  # by `kill`: stays down until `revive`
    EXITED = "exited"  # by itself (a crash, a fault mode, a bad config)
    STOPPED = "stopped"  # by the launcher, on the way out (or not started yet)


@attrs.define(eq=False)
class Replica:
    """What the launcher knows about one replica process."""

    id: int
    fault: str | None
    log_path: Path
    state: ProcessState = ProcessState.STOPPED
    pid: int | None = None
    returncode: int | None = None
    starts: int = 0
    cmd: list[str] = attrs.Factory(list)
    process: trio.Process | None = attrs.field(default=None, repr=False)
    scope: trio.CancelScope | None = attrs.field(default=None, repr=False)
    done: trio.Event | None = attrs.field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.state is ProcessState.RUNNING


class LocalCluster:
    """The replicas of one cluster directory as supervised child processes."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        command: CommandFactory = replica_command,
        grace_s: float = GRACE_S,
        check_ports: bool = True,
        control: bool = True,
        echo: Echo | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.command = command
        self.grace_s = grace_s
        self.check_ports = check_ports
        self.control = control
        self.echo: Echo = echo or (lambda _line: None)
        self.cfg: ClusterConfig | None = None
        self.replicas: dict[int, Replica] = {}
        self.control_socket: Path | None = None
        self._lock = ClusterLock(self.directory)
        self._stack = AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._stopping = False
        self._hurry_scopes: set[trio.CancelScope] = set()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LocalCluster:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create cluster dir {self.directory}: {exc.strerror}") from None
        self._lock.acquire()
        try:
            await reap_stale(self.directory, self.echo)
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        except BaseException:
            self._lock.release()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            with trio.CancelScope(shield=True):
                await self.stop()
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
            await self._stack.__aexit__(*exc_info)
        finally:
            remove_state(self.directory)
            self._lock.release()

    async def start(
        self,
        nodes: int = 4,
        faults: Mapping[int, str | None] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ClusterConfig:
        """Init DIR if needed (with `overrides`), then start every replica."""
        assert self._nursery is not None, "use `async with LocalCluster(...)`"
        cfg_path = self.directory / "cluster.toml"
        if not cfg_path.exists():
            init_cluster(self.directory, nodes=nodes, overrides=overrides)
            self.echo(f"initialised {cfg_path} ({nodes} replicas)")
        cfg = self.cfg = load_config(cfg_path)
        if cfg.n != nodes:
            self.echo(f"using the existing {cfg_path} with {cfg.n} replicas")
        faults = dict(faults or {})
        bad = sorted(i for i in faults if not 0 <= i < cfg.n)
        if bad:
            raise UserError(
                f"--fault names replica {bad[0]}, but the cluster has ids 0..{cfg.n - 1}"
            )
        if self.check_ports:
            check_ports_free(cfg, [r.id for r in cfg.replicas])
        (self.directory / "logs").mkdir(exist_ok=True)
        for r in cfg.replicas:
            log = self.directory / "logs" / f"replica-{r.id}.log"
            self.replicas[r.id] = Replica(r.id, faults.get(r.id), log)
        if self.control:
            self.control_socket = await self._nursery.start(
                serve_control, self.directory, self._control
            )
        for rep in self.replicas.values():
            await self._nursery.start(self._supervise, rep)
        self.write_state()
        return cfg

    async def stop(self) -> None:
        """SIGTERM every running replica, SIGKILL those still there after the grace period."""
        self._stopping = True
        waiting = [rep for rep in self.replicas.values() if rep.done is not None]
        for rep in waiting:
            if rep.scope is not None:
                rep.scope.cancel()
        with trio.fail_after(self.grace_s + 10):
            for rep in waiting:
                assert rep.done is not None
                await rep.done.wait()

    def hurry(self) -> None:
        """Skip the rest of the grace period: SIGKILL whatever is still stopping."""
        self.grace_s = 0.0
        for scope in list(self._hurry_scopes):
            scope.cancel()

    # ------------------------------------------------------------ operations

    def _replica(self, replica_id: int) -> Replica:
        rep = self.replicas.get(replica_id)
        if rep is None:
            raise UserError(
                f"unknown replica id {replica_id}: the cluster has ids 0..{len(self.replicas) - 1}"
            )
        return rep

    async def kill(self, replica_id: int) -> int:
        """SIGKILL replica `replica_id`; returns the pid it had."""
        rep = self._replica(replica_id)
        if not rep.running or rep.process is None or rep.pid is None:
            raise UserError(f"replica {replica_id} is not running ({rep.state})")
        pid = rep.pid
        rep.state = ProcessState.KILLED
        rep.process.kill()
        assert rep.done is not None
        with trio.fail_after(10):
            await rep.done.wait()
        self.echo(f"replica {replica_id} killed (pid {pid})")
        return pid

    async def revive(self, replica_id: int) -> int:
        """Start replica `replica_id` again on its own data dir; returns its new pid."""
        rep = self._replica(replica_id)
        if rep.running:
            raise UserError(f"replica {replica_id} is already running (pid {rep.pid})")
        if self._stopping:
            raise UserError("the cluster is stopping")
        assert self.cfg is not None and self._nursery is not None
        if self.check_ports:
            check_ports_free(self.cfg, [replica_id])
        pid = await self._nursery.start(self._supervise, rep)
        self.echo(f"replica {replica_id} revived (pid {pid})")
        return pid

    def endpoint(self, replica_id: int) -> Endpoint:
        assert self.cfg is not None
        r = self.cfg.replica(replica_id)
        return Endpoint(r.id, r.host, r.http_port)

    def status_url(self, replica_id: int) -> str:
        return self.endpoint(replica_id).status_url

    def metrics_url(self, replica_id: int) -> str:
        return self.endpoint(replica_id).metrics_url

    async def wait_healthy(self, timeout: float, ids: Sequence[int] | None = None) -> None:
        """Wait until every (given) replica's /healthz answers 200; UserError on timeout
        or if one of them exits meanwhile."""
        want = list(self.replicas) if ids is None else list(ids)
        pending = set(want)
        with trio.move_on_after(timeout):
            while pending:
                for rid in sorted(pending):
                    rep = self.replicas[rid]
                    if not rep.running:
                        raise UserError(
                            f"replica {rid} {rep.state} (code {rep.returncode}) "
                            f"while starting; see {rep.log_path}"
                        )
                    if await healthy(self.endpoint(rid).healthz_url, timeout=0.5):
                        pending.discard(rid)
                if pending:
                    await trio.sleep(0.1)
            return
        raise UserError(
            f"replica(s) {sorted(pending)} not healthy after {timeout:g}s; "
            f"see {self.directory / 'logs'}"
        )

    # ------------------------------------------------------------ state file

    def state_doc(self) -> dict[str, Any]:
        reps = []
        for rep in self.replicas.values():
            entry: dict[str, Any] = {
                "id": rep.id,
                "pid": rep.pid,
                "state": rep.state.value,
                "fault": rep.fault,
                "returncode": rep.returncode,
                "starts": rep.starts,
                "cmd": rep.cmd,
                "log": str(rep.log_path),
            }
            if self.cfg is not None:
                entry["status_url"] = self.status_url(rep.id)
                entry["metrics_url"] = self.metrics_url(rep.id)
            reps.append(entry)
        return {
            "launcher_pid": os.getpid(),
            "config": str(self.directory / "cluster.toml"),
            "control_socket": str(self.control_socket) if self.control_socket else None,
            "replicas": reps,
        }

    def write_state(self) -> None:
        write_state(self.directory, self.state_doc())

    # ------------------------------------------------------------ supervision

    async def _deliver_cancel(self, proc: trio.Process) -> None:
        try:
            proc.terminate()
        except ProcessLookupError:
            return
        with trio.move_on_after(self.grace_s) as scope:
            self._hurry_scopes.add(scope)
            try:
                await proc.wait()
            finally:
                self._hurry_scopes.discard(scope)
        if proc.returncode is None:
            self.echo(f"pid {proc.pid} still running after SIGTERM; sending SIGKILL")
            proc.kill()

    async def _supervise(
        self, rep: Replica, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        assert self.cfg is not None
        rep.cmd = self.command(self.cfg, rep.id, rep.fault)
        rep.done = trio.Event()
        rep.returncode = None
        fd = os.open(rep.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"=== launcher: starting replica {rep.id}: {' '.join(rep.cmd)}\n".encode())
            async with trio.open_nursery() as inner:
                rep.scope = inner.cancel_scope
                proc: trio.Process = await inner.start(
                    partial(
                        trio.run_process,
                        rep.cmd,
                        check=False,
                        stdin=subprocess.DEVNULL,
                        stdout=fd,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        deliver_cancel=self._deliver_cancel,
                    )
                )
                os.close(fd)
                fd = -1
                rep.process, rep.pid, rep.state = proc, proc.pid, ProcessState.RUNNING
                rep.starts += 1
                self.write_state()
                task_status.started(proc.pid)
        finally:
            if fd >= 0:
                os.close(fd)
            proc_ = rep.process
            rep.process = None
            rep.scope = None
            if proc_ is not None:
                rep.returncode = proc_.returncode
            if rep.state is ProcessState.RUNNING:
                rep.state = ProcessState.STOPPED if self._stopping else ProcessState.EXITED
                if not self._stopping:
                    self.echo(
                        f"replica {rep.id} exited (code {rep.returncode}); last lines of "
                        f"{rep.log_path}:\n{log_tail(rep.log_path)}"
                    )
            self.write_state()
            rep.done.set()

    async def _control(self, op: str, replica_id: int) -> int:
        """A request from `bft-node cluster kill/revive` in another terminal."""
        return await (self.kill if op == "kill" else self.revive)(replica_id)
