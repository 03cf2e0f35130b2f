"""Shared pieces of the transport tests: keys, a recorder, listeners, a raw WebSocket client.

``RawWs`` drives the client side of the WebSocket protocol with wsproto directly over
any trio stream, so a test can send exactly the bytes an attacker would: half a frame,
text frames, garbage after the upgrade, replayed handshake messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    RejectConnection,
    Request,
    TextMessage,
)

from transport import Identity, Listener, ListenerConfig
from transport.frames import PEER_ROUTE
from transport.handshake import ConnectorHandshake

NAMES = ("0", "1", "2", "3", "client", "mallory")
IDS = {name: Identity(name, bytes([i + 1]) * 32) for i, name in enumerate(NAMES)}
PUB = {name: ident.public_key for name, ident in IDS.items()}


class Recorder:
    """Collects what a listener or link reports."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, Any]] = []
        self.invalid: list[tuple[str, str]] = []
        self.states: list[tuple[str, bool]] = []
        self.frame_arrived = trio.Event()

    async def on_peer(self, name: str, data: Any) -> None:
        self.frames.append((name, data))
        self.frame_arrived.set()
        self.frame_arrived = trio.Event()

    async def on_client(self, conn: Any, principal: str, data: Any) -> None:
        self.frames.append((principal, data))
        await conn.send(b"re:" + data[:64])

    def on_invalid(self, source: str, reason: str) -> None:
        self.invalid.append((source, reason))

    def on_state(self, peer: str, up: bool) -> None:
        self.states.append((peer, up))

    def reasons(self) -> list[str]:
        return [reason for _, reason in self.invalid]


def make_listener(rec: Recorder, **config: Any) -> Listener:
    """Replica "0" knowing peers "1".."3" and the client principal "client"."""
    config.setdefault("close_timeout_s", 0.1)
    decoder = config.pop("peer_decoder", None)
    kwargs = {"peer_decoder": decoder} if decoder else {}
    return Listener(
        IDS["0"],
        peer_keys={n: PUB[n] for n in ("1", "2", "3")},
        client_keys={"client": PUB["client"]},
        on_peer_frame=rec.on_peer,
        on_client_frame=rec.on_client,
        on_invalid=rec.on_invalid,
        config=ListenerConfig(**config),
        **kwargs,
    )


def memory_dialer(listener: Listener, nursery: trio.Nursery) -> Callable[[], Awaitable[Any]]:
    """A dialer that connects to ``listener`` through an in-memory stream pair."""

    async def dial() -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(listener.handle_stream, server)
        return client

    return dial


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


class RawWs:
    """A hand-driven WebSocket client (wsproto) over any trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Event] = []

    @classmethod
    async def tcp(cls, port: int) -> RawWs:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def upgrade(self, route: str = PEER_ROUTE) -> Event:
        await self.stream.send_all(self.ws.send(Request(host="localhost", target=route)))
        return await self.next_event()

    async def send_bytes(self, data: bytes) -> None:
        await self.stream.send_all(self.ws.send(BytesMessage(data=data)))

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def send_raw(self, raw: bytes) -> None:
        await self.stream.send_all(raw)

    async def next_event(self) -> Event:
        """The next protocol event; CloseConnection(1006) if the stream just ends."""
        while not self.events:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                return CloseConnection(code=1006)
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.pop(0)

    async def next_message(self) -> bytes:
        event = await self.next_event()
        assert isinstance(event, BytesMessage), event
        return bytes(event.data)

    async def wait_closed(self) -> int:
        """Read until the server closes; the close code (1006 if the TCP just ended)."""
        while True:
            event = await self.next_event()
            if isinstance(event, CloseConnection):
                return event.code
            if isinstance(event, RejectConnection):
                return event.status_code

    async def handshake(
        self, identity: Identity, route: str = PEER_ROUTE, listener: str = "0"
    ) -> ConnectorHandshake:
        """Upgrade and authenticate as ``identity``, checking the listener is "0"."""
        accepted = await self.upgrade(route)
        assert isinstance(accepted, AcceptConnection), accepted
        hs = ConnectorHandshake(identity, route, listener, PUB[listener])
        await self.send_bytes(hs.hello())
        await self.send_bytes(hs.on_challenge(await self.next_message()))
        hs.on_welcome(await self.next_message())
        return hs

    async def aclose(self) -> None:
        await self.stream.aclose()
