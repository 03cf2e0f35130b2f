"""The Compose cluster for real: docker-compose.yml plus the host-networking test override
on a private dockerd (tests/integration/infra.py), with nothing pulled.

One test walks what docs/ops.md tells users to do: `up -d --build --wait`, every replica
healthy and committing, `bft-node client put/get` from the host with the host's view of
the config, `compose kill replica1` (the others' circuits to it open, commits go on),
`compose start replica1` (circuits close, it catches up), then the default demo fault
(a replica that crashes after a while and is restarted by `restart: unless-stopped`),
and `down -v --rmi local`. Skipped, loudly, only if dockerd cannot run here.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from node.cli.cluster.fetch import fetch_json
from tests.integration.compose_tool import Compose, compose_binary
from tests.integration.harness import wait_for
from tests.integration.infra import (
    BASE_IMAGE,
    ROOT,
    Dockerd,
    build_wheels,
    docker_daemon,
    docker_preflight,
    loud_skip,
    run,
    stage_context,
)

pytestmark = pytest.mark.slow

# The override's default ports (deploy/compose/docker-compose.test.yml): below the range
# other tests pick free ports from (20000-60000) and below the kernel's ephemeral range.
PEER_BASE = 17000
HTTP_BASE = 19100
NODES = 4
SERVICES = ["init", "replica0", "replica1", "replica2", "replica3", "load"]
CRASH_AFTER_S = 15  # the demo default is 45; the same mechanism, sooner


def _busy(ports: list[int]) -> list[int]:
    """The ports a replica could not listen on (SO_REUSEADDR, as trio's listeners do, so
    TIME_WAIT left by an earlier run does not count)."""
    busy = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


async def status(rid: int) -> dict[str, Any] | None:
    try:
        return await fetch_json(f"http://127.0.0.1:{HTTP_BASE + rid}/status", timeout=1.0)
    except Exception:
        return None


async def circuit(rid: int, peer: int) -> str | None:
    doc = await status(rid)
    return doc["peers"][str(peer)]["circuit"] if doc else None


async def last_executed(rid: int) -> int:
    doc = await status(rid)
    return doc["last_executed"] if doc else -1


async def caught_up(rid: int) -> tuple[int, int] | None:
    """(its last_executed, the others' best stable checkpoint) once it has reached it."""
    others = [await status(i) for i in range(NODES) if i != rid]
    target = max((d["stable_checkpoint"] for d in others if d), default=None)
    mine = await last_executed(rid)
    if target is None or mine < target:
        return None
    return mine, target


def write_host_config(directory: Path, host_toml: str, client_key: str) -> None:
    """host.toml and the client key beside it, as `bft-node client` expects them."""
    directory.mkdir()
    (directory / "keys").mkdir(mode=0o700)
    (directory / "host.toml").write_text(host_toml)
    key_path = directory / "keys" / "client.key"
    key_path.touch(mode=0o600)
    key_path.write_text(client_key)


async def _diagnostics(compose: Compose) -> str:
    parts = []
    for args in (("ps", "-a"), ("logs", "--no-color", "--tail", "25")):
        res = await compose(*args, timeout=30, check=False)
        parts.append((res.stdout + res.stderr).decode(errors="replace"))
    return "\n".join(parts)


def test_compose_cluster_end_to_end(tmp_path: Path) -> None:
    # A sync test driving trio.run itself: pytest-trio drops the reason of a skip raised
    # inside an async test, and a dockerd that cannot start must say why.
    docker_preflight()
    trio.run(_scenario, tmp_path, compose_binary())


async def _scenario(tmp_path: Path, binary: Path) -> None:
    timings: dict[str, float] = {}
    clock = trio.current_time

    def lap(name: str, since: float) -> float:
        now = clock()
        timings[name] = round(now - since, 1)
        return now

    t = start = clock()
    with trio.fail_after(600):
        async with docker_daemon() as dockerd:  # and rid of what a killed run left
            t = lap("dockerd up", t)
            ports = [PEER_BASE + i for i in range(NODES)] + [HTTP_BASE + i for i in range(NODES)]
            busy = _busy(ports)
            if busy:
                loud_skip(f"the compose test's fixed replica ports {busy} are in use on 127.0.0.1")
            timings["base image " + await dockerd.ensure_base_image()] = 0.0
            t = lap("base image", t)
            context = stage_context(tmp_path / "context")
            wheels = await build_wheels(context)
            assert any(w.startswith("bft_node-") for w in wheels), wheels
            t = lap("wheels", t)
            compose = _compose_project(binary, context, dockerd)
            t = await _exercise_project(compose, dockerd, tmp_path / "host", timings, lap, t)
            await _assert_project_gone(dockerd, compose.name)
            t = lap("down", t)
            await dockerd.docker("image", "prune", "--force", timeout=60)  # old builds
            t = lap("image prune", t)
        lap("dockerd stopped", t)
    timings["total"] = round(clock() - start, 1)
    print(f"compose end-to-end timings (s): {json.dumps(timings)}", file=sys.__stderr__)


def _compose_project(binary: Path, context: Path, dockerd: Dockerd) -> Compose:
    """The compose project: the stack plus the host-networking test override, all honest."""
    env = {
        **dockerd.env,
        "BASE_IMAGE": BASE_IMAGE,
        "TEST_BASE_PORT": str(PEER_BASE),
        "TEST_HTTP_BASE_PORT": str(HTTP_BASE),
        "FAULTY_REPLICA": "3",
        "FAULT_MODE": "",  # all honest: docs/ops.md's kill walkthrough, f=1 spare
        "LOAD_CLIENTS": "2",
    }
    return Compose(
        binary,
        [ROOT / "docker-compose.yml", ROOT / "deploy/compose/docker-compose.test.yml"],
        context,
        f"bft-e2e-{os.getpid()}",
        env,
    )


async def _exercise_project(
    compose: Compose,
    dockerd: Dockerd,
    host_dir: Path,
    timings: dict[str, float],
    lap: Callable[[str, float], float],
    t: float,
) -> float:
    """Build, bring up and exercise the project, always taking it down; returns the lap clock."""
    try:
        await compose("build", timeout=300)
        t = lap("build", t)
        await compose("up", "-d", "--wait", "--wait-timeout", "90", timeout=150)
        t = lap("up --wait", t)
        await _walkthrough(compose, host_dir, timings)
        t = trio.current_time()
        await _crash_and_restart(compose, dockerd)
        t = lap("crash-after fault cycle", t)
    except BaseException:
        with trio.CancelScope(shield=True), trio.move_on_after(60):
            print(await _diagnostics(compose))  # shown by pytest with the failure
        raise
    finally:
        with trio.CancelScope(shield=True):
            await compose("down", "-v", "--rmi", "local", "--timeout", "5", timeout=90, check=False)
    return t


async def _walkthrough(compose: Compose, host_dir: Path, timings: dict[str, float]) -> None:
    clock = trio.current_time
    assert await health(compose) == {f"replica{i}": "healthy" for i in range(NODES)} | {
        "load": "healthy"
    }

    # every replica reports itself, honest, and the load commits
    docs = [await status(i) for i in range(NODES)]
    assert [d and d["id"] for d in docs] == list(range(NODES))
    assert all(d["fault"] is None for d in docs), docs
    before = await last_executed(0)
    await wait_for(lambda: _above(last_executed(0), before + 20), 20, "the load service's commits")

    # the host's view of the config, and a write and an ordered read from the host
    host_toml = await compose.output("exec", "-T", "replica0", "cat", "/cluster/host.toml")
    key = await compose.output("exec", "-T", "replica0", "cat", "/cluster/keys/client.key")
    write_host_config(host_dir, host_toml, key)
    client = [sys.executable, "-m", "node", "client", "--config", host_dir / "host.toml"]
    await run([*client, "put", "compose-key", "hello-from-host"], timeout=40)
    got = await run([*client, "get", "compose-key"], timeout=40)
    assert "hello-from-host" in got.stdout.decode()
    # the same from inside a container, as docs/ops.md shows (no keys leave the volume)
    inside = ["exec", "-T", "replica0", "bft-node", "client", "--config", "/cluster/cluster.toml"]
    await compose(*inside, "put", "colour", "blue", timeout=40)
    assert "blue" in await compose.output(*inside, "get", "colour", timeout=40)
    st = await run(
        [sys.executable, "-m", "node", "status", "--config", host_dir / "host.toml", "--json"],
        timeout=30,
    )
    assert [e["reachable"] for e in json.loads(st.stdout)] == [True] * NODES

    # kill replica1: the others' circuits to it open, commits go on without it
    t0 = clock()
    await compose("kill", "replica1")
    for rid in (0, 2, 3):
        await wait_for(
            lambda r=rid: _is(circuit(r, 1), "open"), 30, f"replica {rid}'s circuit to 1 opening"
        )
    timings["kill -> circuits open"] = round(clock() - t0, 1)
    assert await status(1) is None
    mark = await last_executed(0)
    await wait_for(lambda: _above(last_executed(0), mark + 20), 30, "commits without replica 1")
    timings["commits without replica1"] = round(clock() - t0, 1)

    # start it again: healthy, the circuits close, it catches up
    t0 = clock()
    await compose("start", "replica1")

    async def healthy() -> bool:
        return (await health(compose)).get("replica1") == "healthy"

    await wait_for(healthy, 60, "replica 1 healthy again", interval=0.5)
    timings["start -> healthy"] = round(clock() - t0, 1)
    for rid in (0, 2, 3):
        await wait_for(
            lambda r=rid: _is(circuit(r, 1), "closed"), 60, f"replica {rid}'s circuit to 1 closing"
        )
    timings["start -> circuits closed"] = round(clock() - t0, 1)
    await wait_for(lambda: caught_up(1), 60, "replica 1 catching up")
    timings["start -> caught up"] = round(clock() - t0, 1)


async def _crash_and_restart(compose: Compose, dockerd: Dockerd) -> None:
    """The demo's default fault, sooner: replica 3 runs with crash-after, exits, is
    restarted by `restart: unless-stopped`; the others' circuits to it trip and close
    again, and it catches up."""
    compose.env.update(FAULTY_REPLICA="3", FAULT_MODE=f"crash-after:{CRASH_AFTER_S}")
    await compose("up", "-d", "--no-deps", "--wait", "--wait-timeout", "60", "replica3", timeout=90)
    doc = await status(3)
    assert doc and doc["fault"] == f"crash-after:{CRASH_AFTER_S}", doc
    container = (await compose.output("ps", "-q", "replica3")).strip()
    trips = (await status(0))["peers"]["3"]["trips"]

    async def restarted() -> bool:
        res = await dockerd.docker("inspect", "-f", "{{.RestartCount}}", container)
        return int(res.stdout) >= 1

    async def tripped() -> bool:
        doc = await status(0)
        return bool(doc) and doc["peers"]["3"]["trips"] > trips

    await wait_for(restarted, CRASH_AFTER_S + 25, "replica 3 crashing and being restarted")
    await wait_for(tripped, 15, "replica 0's circuit to 3 tripping")
    await wait_for(lambda: _is(circuit(0, 3), "closed"), 20, "replica 0's circuit to 3 closing")
    await wait_for(lambda: caught_up(3), 20, "the restarted replica 3 catching up")


async def health(compose: Compose) -> dict[str, str]:
    """Service -> health of the running containers (`compose ps`)."""
    out = await compose.output("ps", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Service"]: row["Health"] for row in rows}


async def _above(value, threshold: int) -> bool:
    return (await value) >= threshold


async def _is(value, want: str) -> bool:
    return (await value) == want


async def _assert_project_gone(dockerd: Dockerd, project: str) -> None:
    label = f"label=com.docker.compose.project={project}"
    for kind in ("container", "volume", "network"):
        args = [kind, "ls", "-q", "--filter", label] + (["--all"] if kind == "container" else [])
        left = (await dockerd.docker(*args)).stdout.split()
        assert not left, f"`down -v` left {kind}s {left}"
