"""The local launcher with real child processes (cheap sleepers instead of replicas).

The process management under test is the real one (`LocalCluster`, the control socket,
`serve_up`, the `bft-node cluster` CLI); only the command each replica runs is swapped
for `python -c "import time; time.sleep(60)"`, since the replica itself is not needed to
prove the bookkeeping.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from node.cli.cluster.control import (
    LOCK_FILE,
    STATE_FILE,
    launcher_running,
    read_state,
    send_control,
    write_state,
)
from node.cli.cluster.launcher import LocalCluster, replica_command
from node.cli.cluster.preflight import check_ports_free, cmdline
from node.config import init_cluster, load_config
from node.errors import UserError

SLEEP = "import time; time.sleep(60)"
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def sleeper(cfg, rid, fault):
    return [sys.executable, "-c", SLEEP, f"replica-{rid}", str(fault)]


def term_ignorer(cfg, rid, fault):
    return [sys.executable, "-c", IGNORE_TERM, f"replica-{rid}"]


def alive(pid: int) -> bool:
    """A live process; a zombie (dead, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def free_cluster(directory: Path, nodes: int = 4) -> Path:
    """init a cluster whose peer and HTTP ports are all free right now."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20000, 60000, 10)
        http = base + 5000 if base < 55000 else base - 5000
        probe = directory.parent / f"probe-{base}"
        cfg = load_config(init_cluster(probe, nodes, base_port=base, http_base_port=http))
        try:
            check_ports_free(cfg, range(nodes))
        except UserError:
            continue
        return init_cluster(directory, nodes, base_port=base, http_base_port=http)
    raise RuntimeError("no free ports found")


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    with trio.move_on_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await trio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------ in-process LocalCluster


async def test_start_writes_state_and_stop_cleans_up(tmp_path):
    d = tmp_path / "c"
    async with LocalCluster(d, command=sleeper, check_ports=False) as cluster:
        cfg = await cluster.start(4, {3: "delay:200"})
        assert (d / "cluster.toml").exists() and cfg.n == 4
        assert launcher_running(d)
        state = read_state(d)
        assert state is not None and state["launcher_pid"] == os.getpid()
        reps = {r["id"]: r for r in state["replicas"]}
        assert sorted(reps) == [0, 1, 2, 3]
        assert all(r["state"] == "running" and alive(r["pid"]) for r in reps.values())
        assert reps[3]["fault"] == "delay:200" and reps[0]["fault"] is None
        assert reps[3]["cmd"][-1] == "delay:200"
        http0 = cfg.replica(0).http_port
        assert reps[0]["status_url"] == f"http://127.0.0.1:{http0}/status"
        assert reps[0]["metrics_url"] == f"http://127.0.0.1:{http0}/metrics"
        assert cluster.status_url(2) == f"http://127.0.0.1:{cfg.replica(2).http_port}/status"
        log = (d / "logs" / "replica-1.log").read_text()
        assert "starting replica 1" in log
        pids = [r["pid"] for r in reps.values()]
    assert not any(alive(p) for p in pids)
    assert not (d / STATE_FILE).exists()
    assert not (d / "control.sock").exists()
    assert not launcher_running(d)
    assert [r.state for r in cluster.replicas.values()] == ["stopped"] * 4


async def test_existing_cluster_is_reused_not_reinitialised(tmp_path):
    d = tmp_path / "c"
    init_cluster(d, 4)
    before = (d / "cluster.toml").read_text()
    async with LocalCluster(d, command=sleeper, check_ports=False) as cluster:
        cfg = await cluster.start(7)  # --nodes is ignored for an existing cluster
        assert cfg.n == 4 and len(cluster.replicas) == 4
    assert (d / "cluster.toml").read_text() == before


async def test_a_second_launcher_on_the_same_dir_is_refused(tmp_path):
    d = tmp_path / "c"
    async with LocalCluster(d, command=sleeper, check_ports=False) as first:
        await first.start(4)
        with pytest.raises(UserError, match="already running"):
            async with LocalCluster(d, command=sleeper, check_ports=False):
                pass
        # the refused one must not have disturbed the running one
        assert all(r.running for r in first.replicas.values())
        assert read_state(d)["launcher_pid"] == os.getpid()
    # once the first is gone the directory is free again
    async with LocalCluster(d, command=sleeper, check_ports=False) as again:
        await again.start(4)


async def test_kill_and_revive_bookkeeping(tmp_path):
    d = tmp_path / "c"
    async with LocalCluster(d, command=sleeper, check_ports=False) as cluster:
        await cluster.start(4)
        old = cluster.replicas[1].pid
        assert await cluster.kill(1) == old
        assert not alive(old)
        rep = read_state(d)["replicas"][1]
        assert rep["state"] == "killed" and rep["returncode"] == -signal.SIGKILL
        with pytest.raises(UserError, match="not running"):
            await cluster.kill(1)
        new = await cluster.revive(1)
        assert new != old and alive(new)
        rep = read_state(d)["replicas"][1]
        assert rep == {**rep, "state": "running", "pid": new, "starts": 2, "returncode": None}
        with pytest.raises(UserError, match="already running"):
            await cluster.revive(1)
        with pytest.raises(UserError, match="unknown replica id 9"):
            await cluster.kill(9)
        others = [cluster.replicas[i].pid for i in (0, 2, 3)]
        assert all(alive(p) for p in others)
    assert not alive(new)


async def test_faults_for_unknown_replicas_are_refused(tmp_path):
    async with LocalCluster(tmp_path / "c", command=sleeper, check_ports=False) as cluster:
        with pytest.raises(UserError, match="replica 4"):
            await cluster.start(4, {4: "silent"})


async def test_control_socket_drives_kill_and_revive(tmp_path):
    d = tmp_path / "c"
    with pytest.raises(UserError, match="no `bft-node cluster up` is running"):
        await send_control(d, "kill", 1)
    async with LocalCluster(d, command=sleeper, check_ports=False) as cluster:
        await cluster.start(4)
        assert oct(os.stat(cluster.control_socket).st_mode & 0o777) == "0o600"
        old = cluster.replicas[2].pid
        reply = await send_control(d, "kill", 2)
        assert reply == {"ok": True, "pid": old}
        assert read_state(d)["replicas"][2]["state"] == "killed"
        with pytest.raises(UserError, match="replica 2 is not running"):
            await send_control(d, "kill", 2)
        reply = await send_control(d, "revive", 2)
        assert reply["pid"] == cluster.replicas[2].pid != old
        assert (await send_control(d, "ping", 0))["pid"] == os.getpid()
        with pytest.raises(UserError, match="unknown control op"):
            await send_control(d, "explode", 0)
        with pytest.raises(UserError, match="unknown replica id 7"):
            await send_control(d, "revive", 7)
        # garbage on the socket is answered, and the launcher keeps serving
        stream = await trio.open_unix_socket(str(cluster.control_socket))
        async with stream:
            await stream.send_all(b"not json\n")
            assert b"bad control request" in await stream.receive_some(4096)
        assert (await send_control(d, "ping", 0))["ok"]


async def test_long_directory_paths_get_a_short_control_socket(tmp_path):
    d = tmp_path / ("x" * 60) / ("y" * 60)
    async with LocalCluster(d, command=sleeper, check_ports=False) as cluster:
        await cluster.start(4)
        sock = cluster.control_socket
        assert sock is not None and not str(sock).startswith(str(d))
        assert read_state(d)["control_socket"] == str(sock)
        await send_control(d, "kill", 0)
    assert not sock.exists() and not sock.parent.exists()


async def test_stop_sigkills_replicas_that_ignore_sigterm(tmp_path):
    d = tmp_path / "c"
    async with LocalCluster(d, command=term_ignorer, check_ports=False, grace_s=0.5) as cluster:
        await cluster.start(4)
        await trio.sleep(0.5)  # let the children install their SIGTERM handler
        start = trio.current_time()
    took = trio.current_time() - start
    assert 0.4 <= took < 3.0
    assert [r.returncode for r in cluster.replicas.values()] == [-signal.SIGKILL] * 4


async def test_a_replica_that_exits_by_itself_is_marked_exited(tmp_path):
    def crasher(cfg, rid, fault):
        if rid == 3:
            return [sys.executable, "-c", "import sys; print('boom: bad key'); sys.exit(3)"]
        return sleeper(cfg, rid, fault)

    lines: list[str] = []
    d = tmp_path / "c"
    async with LocalCluster(d, command=crasher, check_ports=False, echo=lines.append) as c:
        await c.start(4)
        await wait_for(lambda: c.replicas[3].state == "exited", what="replica 3 to exit")
        assert c.replicas[3].returncode == 3
        assert read_state(d)["replicas"][3]["state"] == "exited"
        assert any("replica 3 exited (code 3)" in ln and "boom: bad key" in ln for ln in lines)
        with pytest.raises(UserError, match="replica 3 exited"):
            await c.wait_healthy(5.0, ids=[3])
        # an exited replica can be revived like a killed one
        await c.revive(3)


async def test_stale_state_of_a_dead_launcher_is_reaped(tmp_path):
    d = tmp_path / "c"
    init_cluster(d, 4)
    orphan_cmd = [sys.executable, "-c", SLEEP, "orphan"]
    orphan = await trio.lowlevel.open_process(orphan_cmd, start_new_session=True)
    try:
        await wait_for(lambda: cmdline(orphan.pid) == orphan_cmd, what="the orphan to exec")
        stranger = [sys.executable, "-c", SLEEP, "not-ours"]
        write_state(
            d,
            {
                "launcher_pid": 1,
                "control_socket": None,
                "replicas": [
                    {"id": 0, "pid": orphan.pid, "state": "running", "cmd": orphan_cmd},
                    # a pid whose command line does not match must be left alone (it is us)
                    {"id": 1, "pid": os.getpid(), "state": "running", "cmd": stranger},
                ],
            },
        )
        lines: list[str] = []
        async with LocalCluster(d, command=sleeper, check_ports=False, echo=lines.append) as c:
            with trio.fail_after(5):
                assert await orphan.wait() == -signal.SIGKILL
            assert any(str(orphan.pid) in ln for ln in lines)
            await c.start(4)
    finally:
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()


def test_check_ports_free_names_the_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = load_config(init_cluster(tmp_path / "c", 4, base_port=20000, http_base_port=port))
        with pytest.raises(UserError, match=f"port {port} \\(HTTP port of replica 0\\)"):
            check_ports_free(cfg, [0, 1])
        check_ports_free(cfg, [1])  # only the ids asked about


def test_replica_command_line(tmp_path):
    cfg = load_config(init_cluster(tmp_path / "c", 4))
    assert replica_command(cfg, 2, None) == [
        sys.executable,
        "-m",
        "node",
        "run",
        "--config",
        str(cfg.path),
        "--id",
        "2",
    ]
    assert replica_command(cfg, 3, "drop:0.5")[-2:] == ["--fault", "drop:0.5"]


# ------------------------------------------------------------ the real `cluster up` process

UP_SCRIPT = textwrap.dedent(
    """
    import functools, sys, trio
    from pathlib import Path
    from node.cli.cluster.up import serve_up

    def sleeper(cfg, rid, fault):
        return [sys.executable, "-c", "import time; time.sleep(60)", f"replica-{rid}"]

    trio.run(functools.partial(
        serve_up, Path(sys.argv[1]), 4, {2: "silent"}, command=sleeper, grace_s=2.0))
    """
)


async def _cli(*args: str) -> subprocess.CompletedProcess:
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "node", *args],
            check=False,
            capture_stdout=True,
            capture_stderr=True,
        )


def _running_pids(d: Path) -> dict[int, int]:
    state = read_state(d) or {}
    return {r["id"]: r["pid"] for r in state.get("replicas", []) if r["state"] == "running"}


@pytest.mark.slow
async def test_cluster_up_process_with_cli_kill_revive_and_sigterm(tmp_path):
    d = tmp_path / "c"
    free_cluster(d)
    out = tmp_path / "up.out"
    with out.open("wb") as fh:
        up = await trio.lowlevel.open_process(
            [sys.executable, "-c", UP_SCRIPT, str(d)], stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        first = await wait_for(
            lambda: len(_running_pids(d)) == 4 and _running_pids(d), what="4 running replicas"
        )
        res = await _cli("cluster", "kill", str(d), "1")
        assert res.returncode == 0, res.stderr
        assert f"killed replica 1 (pid {first[1]})" in res.stdout.decode()
        assert not alive(first[1])
        assert read_state(d)["replicas"][1]["state"] == "killed"

        res = await _cli("cluster", "revive", str(d), "1")
        assert res.returncode == 0, res.stderr
        revived = _running_pids(d)[1]
        assert revived != first[1] and alive(revived)

        res = await _cli("cluster", "revive", str(d), "1")
        assert res.returncode == 2
        assert res.stderr.decode().strip() == (
            f"bft-node: error: replica 1 is already running (pid {revived})"
        )

        res = await _cli("cluster", "up", str(d))
        assert res.returncode == 2
        err = res.stderr.decode()
        assert err.count("\n") == 1 and "already running" in err and "Traceback" not in err
        assert _running_pids(d) == {**first, 1: revived}  # the refused `up` touched nothing

        up.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await up.wait()
        assert up.returncode == 0
    finally:
        if up.returncode is None:
            up.kill()
            await up.wait()
    text = out.read_text()
    cfg = load_config(d / "cluster.toml")
    assert f"status http://127.0.0.1:{cfg.replica(0).http_port}/status" in text
    assert "fault silent" in text and "SIGTERM: stopping every replica" in text
    assert text.rstrip().endswith("cluster stopped")
    assert not any(alive(p) for p in [*first.values(), revived])
    assert not (d / STATE_FILE).exists() and (d / LOCK_FILE).exists()
    assert not launcher_running(d)


@pytest.mark.slow
async def test_replicas_orphaned_by_a_sigkilled_launcher_are_reaped_by_the_next(tmp_path):
    d = tmp_path / "c"
    free_cluster(d)
    up = await trio.lowlevel.open_process(
        [sys.executable, "-c", UP_SCRIPT, str(d)], stdout=subprocess.DEVNULL
    )
    pids = await wait_for(
        lambda: len(_running_pids(d)) == 4 and _running_pids(d), what="4 running replicas"
    )
    up.kill()
    await up.wait()
    assert all(alive(p) for p in pids.values())  # orphans, in their own sessions
    res = await _cli("cluster", "kill", str(d), "1")
    assert res.returncode == 2 and "no `bft-node cluster up` is running" in res.stderr.decode()
    async with LocalCluster(d, command=sleeper) as cluster:
        assert not any(alive(p) for p in pids.values())
        await cluster.start(4)  # their ports are free again
