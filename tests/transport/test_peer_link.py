"""PeerLink: connecting, backoff, keepalive, reconnection, the bounded outbox."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing
import trio_websocket

from tests.transport.helpers import IDS, PUB, Recorder, make_listener, wait_until
from transport import FrameTooLarge, Identity, LinkConfig, LinkDown, PeerLink
from transport.frames import CLOSE_UNEXPECTED_FRAME, Limits
from transport.handshake import ListenerHandshake
from transport.keys import KeyRing

FAST = LinkConfig(
    backoff_initial_s=0.02,
    backoff_max_s=0.2,
    keepalive_interval_s=1.0,
    keepalive_timeout_s=2.0,
    close_timeout_s=0.1,
)
REPO = Path(__file__).resolve().parents[2]


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Freezable(trio.abc.Stream):
    """The listener's end of a connection that can be stopped like a SIGSTOPped process."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.thawed = trio.Event()
        self.thawed.set()

    def freeze(self) -> None:
        self.thawed = trio.Event()

    async def send_all(self, data) -> None:
        await self.thawed.wait()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        data = await self.inner.receive_some(max_bytes)
        await self.thawed.wait()
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


def freezable_dialer(listener, nursery, streams: list[Freezable]):
    async def dial():
        client, server = trio.testing.memory_stream_pair()
        frozen = Freezable(server)
        streams.append(frozen)
        nursery.start_soon(listener.handle_stream, frozen)
        return client

    return dial


async def test_send_and_ping_raise_link_down_while_not_connected(nursery, rec):
    link = PeerLink(IDS["1"], "0", PUB["0"], "127.0.0.1", unused_port(), config=FAST)
    await nursery.start(link.run)
    await wait_until(lambda: link.failures >= 3)
    assert not link.connected
    with pytest.raises(LinkDown):
        await link.send(b"x")
    with pytest.raises(LinkDown):
        link.try_send(b"x")
    with pytest.raises(LinkDown):
        await link.ping()
    link.close()


async def test_backoff_grows_exponentially_with_seeded_jitter_and_a_cap():
    cfg = LinkConfig(backoff_initial_s=0.1, backoff_max_s=2.0)
    a = PeerLink(IDS["1"], "0", PUB["0"], config=cfg, rng=random.Random(7))
    b = PeerLink(IDS["1"], "0", PUB["0"], config=cfg, rng=random.Random(7))
    delays = [a.backoff_delay(n) for n in range(12)]
    assert delays == [b.backoff_delay(n) for n in range(12)]  # reproducible
    for n, d in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 2.0 and delays[-1] >= 1.0
    assert len(set(delays)) == len(delays)  # jittered


async def test_reconnects_after_the_peer_restarts(nursery, rec):
    port = unused_port()
    got_state = Recorder()
    link = PeerLink(
        IDS["1"], "0", PUB["0"], "127.0.0.1", port, config=FAST, on_state=got_state.on_state
    )
    await nursery.start(link.run)
    for round_ in range(2):
        frame = b"round %d" % round_
        listener = make_listener(rec, port=port)
        async with trio.open_nursery() as server:
            await server.start(listener.serve)
            with trio.fail_after(5):
                await link.wait_connected()
            await link.send(frame)
            await wait_until(lambda f=frame: ("1", f) in rec.frames)
            server.cancel_scope.cancel()  # the peer goes away
        await wait_until(lambda: not link.connected)
        with pytest.raises(LinkDown):
            await link.send(b"lost")
    assert got_state.states == [("0", True), ("0", False)] * 2
    assert link.connects == 2
    link.close()


async def test_keepalive_detects_a_frozen_peer_within_the_bound(nursery, rec, autojump_clock):
    listener = make_listener(rec)
    streams: list[Freezable] = []
    link = PeerLink(
        IDS["1"],
        "0",
        PUB["0"],
        config=FAST,
        on_state=rec.on_state,
        dialer=freezable_dialer(listener, nursery, streams),
    )
    await nursery.start(link.run)
    await link.wait_connected()
    await link.send(b"before")
    await wait_until(lambda: rec.frames == [("1", b"before")])
    streams[-1].freeze()  # SIGSTOP: accepts bytes, never reads or answers
    frozen_at = trio.current_time()
    await wait_until(lambda: not link.connected, timeout=30)
    detected_after = trio.current_time() - frozen_at
    assert (
        FAST.keepalive_timeout_s
        <= detected_after
        <= FAST.keepalive_interval_s + FAST.keepalive_timeout_s + 0.01
    )
    # The link reconnects on its own (a new connection; the frozen one is replaced).
    await link.wait_connected()
    await link.send(b"after")
    await wait_until(lambda: ("1", b"after") in rec.frames)
    assert len(streams) == 2 and rec.states == [("0", True), ("0", False), ("0", True)]
    link.close()


async def test_full_outbox_blocks_send_and_loss_releases_it(nursery, rec, autojump_clock):
    listener = make_listener(rec)
    ours: list[Freezable] = []

    async def dial():
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(listener.handle_stream, server)
        ours.append(Freezable(client))
        return ours[-1]

    cfg = LinkConfig(
        outbox_size=4, keepalive_interval_s=1.0, keepalive_timeout_s=1.0, close_timeout_s=0.1
    )
    link = PeerLink(IDS["1"], "0", PUB["0"], config=cfg, dialer=dial)
    await nursery.start(link.run)
    await link.wait_connected()
    began = trio.current_time()
    ours[-1].freeze()  # our socket stops taking bytes (a peer that stopped reading)
    await link.send(b"taken by the writer, stuck in the socket")
    await trio.sleep(0.01)
    assert [link.try_send(b"q") for _ in range(5)] == [True] * 4 + [False]
    with trio.move_on_after(0.5) as waited:
        await link.send(b"waits for space")
    assert waited.cancelled_caught
    # When the link is declared dead, a sender waiting for space gets LinkDown.
    failures: list[BaseException] = []

    async def blocked_sender():
        try:
            await link.send(b"z")
        except LinkDown as exc:
            failures.append(exc)

    nursery.start_soon(blocked_sender)
    await wait_until(lambda: failures, timeout=5)
    assert not link.connected
    assert trio.current_time() - began <= 0.5 + cfg.keepalive_interval_s + cfg.keepalive_timeout_s
    link.close()


async def test_messages_over_the_limits_are_refused_locally(nursery, rec):
    link = PeerLink(IDS["1"], "0", PUB["0"], config=LinkConfig(max_frame=100, max_message=300))
    with pytest.raises(FrameTooLarge):
        await link.send(b"x" * 301)  # above the message limit
    with pytest.raises(FrameTooLarge):
        link.try_send(b"x" * 101)  # no fragments without waiting


async def test_a_message_above_the_frame_limit_arrives_whole(nursery, rec):
    limit = 1024
    port = await nursery.start(
        make_listener(rec, limits=Limits(peer_max_frame=limit, peer_max_message=10 * limit)).serve
    )
    config = attrs.evolve(FAST, max_frame=limit, max_message=10 * limit)
    link = PeerLink(IDS["1"], "0", PUB["0"], "127.0.0.1", port, config=config)
    await nursery.start(link.run)
    with trio.fail_after(5):
        await link.wait_connected()
    big = bytes(range(256)) * 20  # 5,120 bytes: six fragments
    await link.send(b"small")
    await link.send(big)
    await link.send(b"after")
    await wait_until(lambda: len(rec.frames) == 3)
    assert rec.frames == [("1", b"small"), ("1", big), ("1", b"after")]
    assert not rec.invalid
    link.close()


async def test_fragments_beyond_the_message_limit_close_the_link(nursery, rec):
    limit = 1024
    port = await nursery.start(
        make_listener(rec, limits=Limits(peer_max_frame=limit, peer_max_message=2 * limit)).serve
    )
    config = attrs.evolve(FAST, max_frame=limit, max_message=10 * limit)
    link = PeerLink(IDS["1"], "0", PUB["0"], "127.0.0.1", port, config=config)
    await nursery.start(link.run)
    with trio.fail_after(5):
        await link.wait_connected()
    await link.send(b"y" * (5 * limit))
    await wait_until(lambda: ("1", "oversized") in rec.invalid)
    assert rec.frames == []
    link.close()


async def test_ping_measures_round_trip(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    link = PeerLink(IDS["1"], "0", PUB["0"], "127.0.0.1", port, config=FAST)
    await nursery.start(link.run)
    with trio.fail_after(5):
        await link.wait_connected()
    rtt = await link.ping()
    assert 0 < rtt < 1.0 and link.last_rtt == rtt
    link.close()


async def test_impostor_listener_is_reported_and_never_used(nursery, rec):
    impostor = make_listener(Recorder())
    impostor.identity = Identity("0", IDS["mallory"].private_key)  # right name, wrong key
    port = await nursery.start(impostor.serve)
    link = PeerLink(
        IDS["1"], "0", PUB["0"], "127.0.0.1", port, config=FAST, on_invalid=rec.on_invalid
    )
    await nursery.start(link.run)
    await wait_until(lambda: len(rec.invalid) >= 2)
    assert set(rec.invalid) == {("0", "bad_signature")} and link.connects == 0
    link.close()


async def test_refused_by_a_peer_that_does_not_know_us(nursery, rec, caplog):
    port = await nursery.start(make_listener(rec).serve)
    stranger = Identity("7", IDS["mallory"].private_key)
    link = PeerLink(stranger, "0", PUB["0"], "127.0.0.1", port, config=FAST)
    await nursery.start(link.run)
    await wait_until(lambda: link.failures >= 3)
    assert link.connects == 0
    warnings = [
        r
        for r in caplog.records
        if "refused_by_peer" in r.getMessage() and r.levelname == "WARNING"
    ]
    assert len(warnings) == 1 and "reason=unknown_principal" in warnings[0].getMessage()
    link.close()


async def test_listener_that_talks_back_is_cut_off(nursery, rec):
    """After the handshake a listener has nothing to say on a peer link."""

    async def chatty(stream):
        async with trio.open_nursery() as inner:
            request = await trio_websocket.wrap_server_stream(inner, stream)
            ws = await request.accept()
            hs = ListenerHandshake(IDS["0"], "/peer", KeyRing({"1": PUB["1"]}))
            await ws.send_message(hs.on_hello(await ws.get_message()))
            await ws.send_message(hs.on_proof(await ws.get_message()))
            await ws.send_message(b"unsolicited")
            with pytest.raises(trio_websocket.ConnectionClosed):
                await ws.get_message()
            closed.append(ws.closed.code)

    async def dial():
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(chatty, server)
        return client

    closed: list[int] = []
    link = PeerLink(IDS["1"], "0", PUB["0"], config=FAST, on_invalid=rec.on_invalid, dialer=dial)
    await nursery.start(link.run)
    await wait_until(lambda: closed)
    assert rec.invalid[0] == ("0", "unexpected_frame") and closed[0] == CLOSE_UNEXPECTED_FRAME
    link.close()


async def test_handshake_against_a_peer_that_never_answers_times_out(nursery, rec, autojump_clock):
    accepted: list[trio.abc.Stream] = []

    async def dial():
        client, server = trio.testing.memory_stream_pair()
        accepted.append(server)  # accepts the connection, then nothing: no upgrade answer
        return client

    cfg = LinkConfig(handshake_timeout_s=2.0, backoff_initial_s=1.0, backoff_max_s=1.0)
    link = PeerLink(IDS["1"], "0", PUB["0"], config=cfg, dialer=dial, on_invalid=rec.on_invalid)
    await nursery.start(link.run)
    began = trio.current_time()
    await wait_until(lambda: link.failures >= 2, timeout=30)
    assert link.connects == 0 and rec.invalid == []  # slow is not invalid
    # two attempts of 2 s each, with a backoff of 0.5..1 s in between
    assert 4.5 <= trio.current_time() - began <= 5.5
    link.close()


CHILD = """
import sys, trio
sys.path.insert(0, sys.argv[1])
from tests.transport.helpers import Recorder, make_listener
async def main():
    listener = make_listener(Recorder())
    async with trio.open_nursery() as n:
        port = await n.start(listener.serve)
        print(port, flush=True)
trio.run(main)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_keepalive_detects_a_sigstopped_peer_process(nursery, rec):
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD, str(REPO)], stdout=subprocess.PIPE
    )
    try:
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                line += await proc.stdout.receive_some(64)
        port = int(line)
        cfg = LinkConfig(
            keepalive_interval_s=0.2,
            keepalive_timeout_s=0.3,
            close_timeout_s=0.1,
            backoff_initial_s=5.0,
            backoff_max_s=5.0,
        )
        link = PeerLink(
            IDS["1"], "0", PUB["0"], "127.0.0.1", port, config=cfg, on_state=rec.on_state
        )
        await nursery.start(link.run)
        with trio.fail_after(10):
            await link.wait_connected()
        await link.send(b"alive")
        os.kill(proc.pid, signal.SIGSTOP)
        stopped_at = trio.current_time()
        await wait_until(lambda: not link.connected, timeout=5)
        detected_after = trio.current_time() - stopped_at
        assert 0.3 <= detected_after <= 0.5 + 0.5  # the bound, plus slack for a busy machine
        assert rec.states == [("0", True), ("0", False)]
        link.close()
    finally:
        proc.kill()
        await proc.wait()
