"""The listener against good and bad connections, on 127.0.0.1 port 0 and in memory."""

from __future__ import annotations

import trio
import trio.testing
from wsproto.events import AcceptConnection, RejectConnection

from tests.transport.helpers import IDS, PUB, RawWs, Recorder, make_listener, wait_until
from transport import Identity, PeerLink
from transport.frames import (
    CLIENT_ROUTE,
    CLOSE_BAD_SIGNATURE,
    CLOSE_HANDSHAKE_TIMEOUT,
    CLOSE_INVALID_FRAME,
    CLOSE_OVERSIZED,
    CLOSE_REPLAYED,
    CLOSE_SUPERSEDED,
    CLOSE_TEXT_FRAME,
    CLOSE_UNKNOWN_PRINCIPAL,
    PEER_ROUTE,
    Limits,
)
from transport.handshake import ConnectorHandshake

SMALL = Limits(peer_max_frame=1024, client_max_frame=256, handshake_max_frame=1024)


async def good_peer_still_works(port: int, rec: Recorder, name: str = "2") -> None:
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS[name])
    await raw.send_bytes(b"still here")
    await wait_until(lambda: (name, b"still here") in rec.frames)
    await raw.aclose()


async def test_peer_link_authenticates_and_frames_arrive_in_order(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    link = PeerLink(IDS["1"], "0", PUB["0"], "127.0.0.1", port, on_state=rec.on_state)
    await nursery.start(link.run)
    with trio.fail_after(5):
        await link.wait_connected()
    for i in range(100):
        await link.send(b"m%d" % i)
    await wait_until(lambda: len(rec.frames) == 100)
    assert rec.frames == [("1", b"m%d" % i) for i in range(100)]
    assert listener.peers == {"1"} and rec.states == [("0", True)] and rec.invalid == []
    link.close()
    await wait_until(lambda: listener.open_connections == 0)
    assert rec.states == [("0", True), ("0", False)]


async def test_unknown_name_is_refused_and_counted(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    raw = await RawWs.tcp(port)
    assert isinstance(await raw.upgrade(), AcceptConnection)
    await raw.send_bytes(ConnectorHandshake(IDS["mallory"], PEER_ROUTE, "0", PUB["0"]).hello())
    assert await raw.wait_closed() == CLOSE_UNKNOWN_PRINCIPAL
    assert rec.invalid == [("127.0.0.1", "unknown_principal")]
    await good_peer_still_works(port, rec)


async def test_impostor_with_a_known_name_but_wrong_key_is_refused(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    impostor = Identity("1", IDS["mallory"].private_key)
    link = PeerLink(impostor, "0", PUB["0"], "127.0.0.1", port)
    await nursery.start(link.run)
    await wait_until(lambda: len(rec.invalid) >= 2)
    link.close()
    assert set(rec.invalid) == {("127.0.0.1", "bad_signature")}  # blamed on the address
    assert not link.connected and link.connects == 0 and listener.peers == frozenset()


async def test_bad_signature_is_refused(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    raw = await RawWs.tcp(port)
    await raw.upgrade()
    hs = ConnectorHandshake(IDS["1"], PEER_ROUTE, "0", PUB["0"])
    await raw.send_bytes(hs.hello())
    proof = bytearray(hs.on_challenge(await raw.next_message()))
    proof[-5] ^= 0xFF
    await raw.send_bytes(bytes(proof))
    assert await raw.wait_closed() == CLOSE_BAD_SIGNATURE
    assert rec.invalid == [("127.0.0.1", "bad_signature")]


async def test_replayed_handshake_is_refused(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    genuine = await RawWs.tcp(port)
    hs = ConnectorHandshake(IDS["1"], PEER_ROUTE, "0", PUB["0"])
    await genuine.upgrade()
    hello = hs.hello()
    await genuine.send_bytes(hello)
    proof = hs.on_challenge(await genuine.next_message())
    await genuine.send_bytes(proof)
    hs.on_welcome(await genuine.next_message())
    await genuine.aclose()
    # An eavesdropper replays the recorded hello...
    replay = await RawWs.tcp(port)
    await replay.upgrade()
    await replay.send_bytes(hello)
    assert await replay.wait_closed() == CLOSE_REPLAYED
    # ...or sends a fresh hello followed by the recorded proof.
    replay = await RawWs.tcp(port)
    await replay.upgrade()
    await replay.send_bytes(ConnectorHandshake(IDS["1"], PEER_ROUTE, "0", PUB["0"]).hello())
    await replay.next_message()
    await replay.send_bytes(proof)
    assert await replay.wait_closed() == CLOSE_BAD_SIGNATURE
    assert rec.reasons() == ["replayed", "bad_signature"]


async def test_handshake_not_finished_in_time_is_refused(nursery, rec, autojump_clock):
    listener = make_listener(rec, handshake_timeout_s=3.0)
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(listener.handle_stream, server)
    raw = RawWs(client)
    began = trio.current_time()
    assert isinstance(await raw.upgrade(), AcceptConnection)
    await raw.send_bytes(ConnectorHandshake(IDS["1"], PEER_ROUTE, "0", PUB["0"]).hello())
    await raw.next_message()  # the challenge; the proof never comes
    assert await raw.wait_closed() == CLOSE_HANDSHAKE_TIMEOUT
    assert 3.0 <= trio.current_time() - began < 3.5
    assert rec.invalid == [("StapledStream", "handshake_timeout")]
    await wait_until(lambda: listener.open_connections == 0)


async def test_silent_connection_times_out_before_upgrade(nursery, rec, autojump_clock):
    listener = make_listener(rec, handshake_timeout_s=2.0)
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(listener.handle_stream, server)
    await wait_until(lambda: rec.invalid != [], timeout=10)
    assert rec.reasons() == ["handshake_timeout"]
    await wait_until(lambda: listener.open_connections == 0)
    assert await client.receive_some(100) == b""  # closed by the listener


async def test_garbage_bytes_on_raw_tcp(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    for garbage in (
        b"\x00\xff" * 300,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01junk\r\n\r\n",
    ):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(garbage)
        with trio.fail_after(5):
            while await stream.receive_some(4096):
                pass
        await stream.aclose()
    await wait_until(lambda: len(rec.invalid) == 3)
    assert rec.reasons() == ["bad_upgrade"] * 3
    await good_peer_still_works(port, rec)
    await wait_until(lambda: listener.open_connections == 0)


async def test_port_probe_without_bytes_is_not_counted(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.aclose()
    await wait_until(lambda: listener.open_connections == 0)
    assert rec.invalid == []


async def test_unknown_route_is_rejected(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    raw = await RawWs.tcp(port)
    event = await raw.upgrade("/admin")
    assert isinstance(event, RejectConnection) and event.status_code == 404
    assert rec.invalid == [("127.0.0.1", "unknown_route")]


async def test_peer_key_does_not_open_the_client_route(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    raw = await RawWs.tcp(port)
    await raw.upgrade(CLIENT_ROUTE)
    await raw.send_bytes(ConnectorHandshake(IDS["1"], CLIENT_ROUTE, "0", PUB["0"]).hello())
    assert await raw.wait_closed() == CLOSE_UNKNOWN_PRINCIPAL


async def test_text_frame_where_binary_is_expected(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["1"])
    await raw.send_bytes(b"ok")
    await raw.send_text("hello")
    await raw.send_bytes(b"never delivered")
    assert await raw.wait_closed() == CLOSE_TEXT_FRAME
    assert rec.frames == [("1", b"ok")]
    assert rec.invalid == [("1", "text_frame")]


async def test_text_frame_during_handshake(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)
    raw = await RawWs.tcp(port)
    await raw.upgrade()
    await raw.send_text("hello?")
    assert await raw.wait_closed() == CLOSE_TEXT_FRAME
    assert rec.invalid == [("127.0.0.1", "text_frame")]


async def test_oversized_frames_per_route(nursery, rec):
    listener = make_listener(rec, limits=SMALL)
    port = await nursery.start(listener.serve)
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["1"])
    await raw.send_bytes(b"p" * 1024)  # exactly the peer limit: fine
    await raw.send_bytes(b"p" * 1025)
    assert await raw.wait_closed() == CLOSE_OVERSIZED
    client = await RawWs.tcp(port)
    await client.handshake(IDS["client"], CLIENT_ROUTE)
    await client.send_bytes(b"c" * 256)
    assert await client.next_message() == b"re:" + b"c" * 64
    await client.send_bytes(b"c" * 257)  # within the peer limit, over the client limit
    assert await client.wait_closed() == CLOSE_OVERSIZED
    await wait_until(lambda: len(rec.invalid) == 2)
    assert rec.frames == [("1", b"p" * 1024), ("client", b"c" * 256)]
    assert rec.invalid == [("1", "oversized"), ("client", "oversized")]


async def test_huge_frame_is_cut_off_early_even_during_handshake(nursery, rec):
    port = await nursery.start(make_listener(rec).serve)  # default 16 MiB peer limit
    raw = await RawWs.tcp(port)
    await raw.upgrade()
    # Announce a 64 MiB frame; the listener must not wait for (or buffer) all of it.
    await raw.send_raw(
        raw.ws.send(
            __import__("wsproto").events.BytesMessage(data=b"x" * 8192, message_finished=False)
        )
    )
    assert await raw.wait_closed() == CLOSE_OVERSIZED
    await wait_until(lambda: rec.invalid == [("127.0.0.1", "oversized")])


async def test_truncated_frame_then_hang_up(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["1"])
    whole = raw.ws.send(__import__("wsproto").events.BytesMessage(data=b"z" * 500))
    await raw.send_raw(whole[: len(whole) // 2])
    await trio.sleep(0.05)
    await raw.aclose()
    await wait_until(lambda: listener.open_connections == 0)
    assert rec.frames == [] and listener.peers == frozenset()
    await good_peer_still_works(port, rec)


async def test_garbage_after_the_handshake(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["1"])
    await raw.send_raw(b"\x0f\x85garbage-not-a-frame" * 10)  # reserved opcode, unmasked
    await raw.wait_closed()
    await wait_until(lambda: listener.open_connections == 0)
    assert rec.frames == []
    await good_peer_still_works(port, rec)


class Rejection(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decoder(data: bytes) -> bytes:
    if data.startswith(b"!"):
        raise Rejection("bad_shape")
    if data.startswith(b"?"):
        raise ValueError("a decoder bug, not a declared rejection")
    return data.upper()


async def test_decoder_rejections_close_the_link(nursery, rec):
    port = await nursery.start(make_listener(rec, peer_decoder=decoder).serve)
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["1"])
    await raw.send_bytes(b"abc")
    await raw.send_bytes(b"!bad")
    assert await raw.wait_closed() == CLOSE_INVALID_FRAME
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["2"])
    await raw.send_bytes(b"?odd")
    assert await raw.wait_closed() == CLOSE_INVALID_FRAME
    assert rec.frames == [("1", b"ABC")]
    assert rec.invalid == [("1", "bad_shape"), ("2", "malformed")]


async def test_newer_connection_from_a_peer_replaces_the_older(nursery, rec):
    listener = make_listener(rec)
    port = await nursery.start(listener.serve)
    old = await RawWs.tcp(port)
    await old.handshake(IDS["1"])
    new = await RawWs.tcp(port)
    await new.handshake(IDS["1"])
    assert await old.wait_closed() == CLOSE_SUPERSEDED
    await new.send_bytes(b"from the new one")
    await wait_until(lambda: rec.frames == [("1", b"from the new one")])
    assert listener.peers == {"1"} and rec.invalid == []


async def test_slow_client_is_disconnected_not_waited_for(nursery, rec):
    listener = make_listener(rec, client_outbox_size=2)
    conns = []

    async def flood(conn, principal, data):
        conns.append(conn)
        for _ in range(5):
            try:
                await conn.send(b"reply")
            except Exception as exc:  # the 3rd reply finds the outbox full
                conns.append(exc)
                return

    listener._on_client_frame = flood
    port = await nursery.start(listener.serve)
    raw = await RawWs.tcp(port)
    await raw.handshake(IDS["client"], CLIENT_ROUTE)
    await raw.send_bytes(b"go")
    await wait_until(lambda: len(conns) == 2)
    assert type(conns[1]).__name__ == "LinkDown" and conns[0].closed
    await wait_until(lambda: listener.open_connections == 0)
