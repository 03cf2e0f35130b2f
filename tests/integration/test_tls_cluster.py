"""A TLS cluster of real `bft-node run` processes commits, and a tap between replicas
never sees a written value in clear (while the same tap on a plain cluster does, which
shows the tap works).

Replica 1 is configured at 127.0.0.2 but listens on 127.0.0.1 (`--listen`); a TCP relay
in this test listens on 127.0.0.2 and forwards to it, recording what crosses the peer
port, so every replica's and the client's traffic to replica 1 passes the tap."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from node.cli.cluster.launcher import LocalCluster, replica_command
from node.client import connect
from node.config import init_cluster, load_config
from tests.integration.harness import FAST, free_base_ports, status, wait_for

pytestmark = pytest.mark.slow

TAPPED = 1
TAP_HOST = "127.0.0.2"
MARKER = "TOP-SECRET-VALUE"
KEEP = 32 * 1024 * 1024


async def _pump(src: trio.abc.Stream, dst: trio.abc.Stream, seen: bytearray | None) -> None:
    try:
        while data := await src.receive_some(65536):
            if seen is not None and len(seen) < KEEP:
                seen += data
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(dst)


async def _relay(port: int, seen: bytearray | None, downstream: trio.abc.Stream) -> None:
    try:
        upstream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        await trio.aclose_forcefully(downstream)
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump, downstream, upstream, seen)
        nursery.start_soon(_pump, upstream, downstream, seen)


async def _executed_all(lc: LocalCluster) -> bool:
    docs = [await status(lc, rid) for rid in range(4)]
    return all(docs) and docs[TAPPED]["last_executed"] == max(d["last_executed"] for d in docs)


def _command(cfg, replica_id: int, fault: str | None) -> list[str]:
    cmd = replica_command(cfg, replica_id, fault)
    return cmd + (["--listen", "127.0.0.1"] if replica_id == TAPPED else [])


async def _run(directory: Path, tls: bool) -> tuple[bytes, int]:
    base, http_base = free_base_ports(4)
    hosts = ["127.0.0.1", TAP_HOST, "127.0.0.1", "127.0.0.1"]
    init_cluster(
        directory, base_port=base, http_base_port=http_base, hosts=hosts, overrides=FAST, tls=tls
    )
    cfg = load_config(directory / "cluster.toml")
    tapped = cfg.replica(TAPPED)
    seen = bytearray()
    async with trio.open_nursery() as nursery:
        for port, record in ((tapped.port, seen), (tapped.http_port, None)):
            handler = partial(_relay, port, record)
            await nursery.start(partial(trio.serve_tcp, handler, port, host=TAP_HOST))
        # the relay holds replica 1's configured address: no free-port check there
        lc_opts = {"command": _command, "grace_s": 3.0, "control": False, "check_ports": False}
        async with LocalCluster(directory, **lc_opts) as lc:
            await lc.start(4)
            await lc.wait_healthy(30)
            async with connect(cfg, timeout=10.0) as kv:
                for i in range(30):
                    await kv.put(f"k{i}", f"{MARKER}-{i}")
                for i in range(30):
                    assert await kv.get(f"k{i}") == f"{MARKER}-{i}".encode()
            # the writes commit on any 2f + 1 replicas: wait until the tapped one executed
            # them too, so every batch (the values inside) crossed the tap
            await wait_for(partial(_executed_all, lc), 30, f"replica {TAPPED} to catch up")
        nursery.cancel_scope.cancel()
    return bytes(seen), len(seen)


async def test_a_tls_cluster_commits_and_the_tap_sees_no_value(tmp_path: Path) -> None:
    with trio.fail_after(120):
        seen, size = await _run(tmp_path / "tls", tls=True)
    assert size > 5_000, size  # the tap carried the traffic to replica 1
    assert MARKER.encode() not in seen
    assert b"\x17\x03\x03" in seen  # TLS application-data records


async def test_the_same_tap_on_a_plain_cluster_sees_the_values(tmp_path: Path) -> None:
    with trio.fail_after(120):
        seen, size = await _run(tmp_path / "plain", tls=False)
    assert size > 5_000 and MARKER.encode() in seen
