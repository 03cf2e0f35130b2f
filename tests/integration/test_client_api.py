"""The public client API against real `bft-node run` processes on 127.0.0.1: the Trio
client through a primary kill, and the blocking client from several threads (puts, gets
and cas races with exactly one winner per round)."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
import trio

import node.client
from node.client import Client, Refused, RequestTimeout
from tests.integration.infra import ROOT

pytestmark = pytest.mark.slow

DEADLINE_S = 8.0


async def test_calls_through_a_primary_kill_finish_or_raise_typed_errors(cluster) -> None:
    outcomes: list[str] = []
    async with node.client.connect(cluster.cfg.path, timeout=DEADLINE_S) as kv:

        async def writer(i: int) -> None:
            for j in range(40):
                started = trio.current_time()
                try:
                    await kv.put(f"w{i}-{j}", f"{i}.{j}")
                    outcomes.append("ok")
                except (RequestTimeout, Refused):
                    outcomes.append("error")
                assert trio.current_time() - started <= DEADLINE_S + 1.0  # nothing hangs
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(writer, i)
            await trio.sleep(1.0)
            await cluster.kill(0)  # the primary of view 0
        assert len(outcomes) == 6 * 40
        assert outcomes.count("ok") >= 6 * 40 - 6, outcomes.count("error")
        for i in range(6):
            assert await kv.get(f"w{i}-39") == f"{i}.39".encode()


def _in_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def _cas_round(kv: Client, rnd: int) -> list[int]:
    """Four threads cas "race" from its current value at once; who swapped."""
    winners: list[int] = []
    expected = None if rnd == 0 else kv.get("race")

    def contend(i: int) -> None:
        if kv.cas("race", expected, f"{i}@{rnd}"):
            winners.append(i)

    assert _in_threads(4, contend) == []
    return winners


async def test_blocking_client_from_several_threads(cluster) -> None:
    def scenario() -> None:
        with Client(cluster.cfg.path, timeout=10.0, text=True) as kv:

            def writer(i: int) -> None:
                for j in range(25):
                    kv.put(f"t{i}-{j}", f"v{i}.{j}")
                    assert kv.get(f"t{i}-{j}") == f"v{i}.{j}"
                assert kv.delete(f"t{i}-0") is True
                assert kv.get(f"t{i}-0") is None

            assert _in_threads(6, writer) == []
            for rnd in range(5):
                winners = _cas_round(kv, rnd)
                assert len(winners) == 1, winners
                assert kv.get("race") == f"{winners[0]}@{rnd}"
        with pytest.raises(node.client.ClientError, match="closed"):
            kv.get("race")

    await trio.to_thread.run_sync(scenario)


async def _cli(cluster, *args: str) -> tuple[int, str]:
    env = {**os.environ, "BFT_CONFIG": str(cluster.cfg.path)}  # no --config: from the env
    proc = await trio.run_process(
        [sys.executable, "-m", "node", "client", "--timeout", "10", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return proc.returncode, proc.stdout.decode().strip()


async def test_cli_runs_every_operation(cluster) -> None:
    assert await _cli(cluster, "put", "k", "v1") == (0, '{"status": "ok", "key": "k"}')
    assert await _cli(cluster, "get", "k") == (0, "v1")
    code, out = await _cli(cluster, "get", "k", "--json")
    assert code == 0 and json.loads(out) == {"key": "k", "found": True, "value": "v1"}
    assert (await _cli(cluster, "cas", "k", "nope", "v2"))[0] == 1
    assert (await _cli(cluster, "cas", "k", "v1", "v2"))[0] == 0
    assert await _cli(cluster, "get", "k") == (0, "v2")
    assert (await _cli(cluster, "cas", "fresh", "", "x", "--if-absent"))[0] == 0
    assert (await _cli(cluster, "cas", "fresh", "", "y", "--if-absent"))[0] == 1
    assert await _cli(cluster, "delete", "k") == (0, '{"status": "ok", "key": "k"}')
    code, out = await _cli(cluster, "get", "k", "--json")
    assert code == 1 and json.loads(out) == {"key": "k", "found": False, "value": None}
    assert await _cli(cluster, "delete", "k") == (0, '{"status": "absent", "key": "k"}')


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### From Python") :]
    start = section.index("```python\n") + 10
    return section[start : section.index("\n```", start)]


async def test_the_readme_example_runs(cluster) -> None:
    code = _readme_example().replace("mycluster/cluster.toml", str(cluster.cfg.path))
    assert code.count("\n") <= 14  # the API in about ten lines
    proc = await trio.run_process(
        [sys.executable, "-c", code], capture_stdout=True, capture_stderr=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode().split() == ["b'blue'", "True"]
