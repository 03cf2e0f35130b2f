"""The client side: open_client against a real listener on 127.0.0.1."""

from __future__ import annotations

import pytest
import trio

from tests.transport.helpers import IDS, PUB, make_listener, memory_dialer, wait_until
from transport import ClientConfig, FrameTooLarge, HandshakeFailed, LinkDown, Refused, open_client
from transport.frames import Limits


def client(port: int, **kw):
    kw.setdefault("principal", "client")
    kw.setdefault("private_key", IDS[kw["principal"]].private_key)
    kw.setdefault("replica", "0")
    kw.setdefault("replica_key", PUB["0"])
    return open_client("127.0.0.1", port, **kw)


async def test_client_round_trip(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    async with client(port) as c:
        assert listener.clients == 1
        for i in range(20):
            await c.send(b"req %d" % i)
            assert await c.receive() == b"re:req %d" % i
    await wait_until(lambda: listener.open_connections == 0)
    assert rec.frames == [("client", b"req %d" % i) for i in range(20)] and rec.invalid == []


async def test_many_sessions_of_one_principal_at_once(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)

    async def session(i: int) -> None:
        async with client(port) as c:
            await c.send(b"s%d" % i)
            assert await c.receive() == b"re:s%d" % i

    async with trio.open_nursery() as sessions:
        for i in range(10):
            sessions.start_soon(session, i)
    assert sorted(rec.frames) == sorted(("client", b"s%d" % i) for i in range(10))


async def test_client_checks_the_replica_identity(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    with pytest.raises(HandshakeFailed) as info:
        async with client(port, replica_key=PUB["1"]):
            pass
    assert info.value.reason == "bad_signature"
    with pytest.raises(HandshakeFailed) as info:
        async with client(port, replica="1", replica_key=PUB["1"]):  # listener is "0"
            pass
    assert isinstance(info.value, Refused) and info.value.reason == "bad_handshake"


async def test_unknown_principal_is_refused(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    with pytest.raises(Refused) as info:
        async with client(port, principal="mallory"):
            pass
    assert info.value.reason == "unknown_principal" and info.value.code == 4001
    assert rec.invalid == [("127.0.0.1", "unknown_principal")]


async def test_size_limit_applies_to_client_frames(nursery, rec):
    limits = Limits(client_max_frame=128)
    port = await nursery.start(make_listener(rec, limits=limits).serve)
    async with client(port, config=ClientConfig(max_frame=128)) as c:
        with pytest.raises(FrameTooLarge):
            await c.send(b"x" * 129)
        await c.send(b"x" * 128)
        assert await c.receive() == b"re:" + b"x" * 64
    # A client that ignores its own limit is cut off by the listener.
    async with client(port, config=ClientConfig(max_frame=1024)) as c:
        await c.send(b"x" * 129)
        with pytest.raises(LinkDown):
            await c.receive()
        assert c.closed
    await wait_until(lambda: rec.invalid == [("client", "oversized")])


async def test_receive_after_the_replica_goes_away(nursery, rec):
    listener = make_listener(rec)
    async with trio.open_nursery() as server:
        port = await server.start(listener.serve)
        async with client(port) as c:
            server.cancel_scope.cancel()
            with trio.fail_after(5), pytest.raises(LinkDown):
                await c.receive()
            with pytest.raises(LinkDown):
                await c.send(b"too late")


async def test_unreachable_replica(nursery):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError):
        async with client(port):
            pass


async def test_client_over_a_memory_stream(nursery, rec, autojump_clock):
    listener = make_listener(rec)
    dial = memory_dialer(listener, nursery)
    async with open_client(
        "replica-0",
        0,
        principal="client",
        private_key=IDS["client"].private_key,
        replica="0",
        replica_key=PUB["0"],
        dialer=dial,
    ) as c:
        await c.send(b"ping")
        assert await c.receive() == b"re:ping"
