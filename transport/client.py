"""The client side: talk to one replica's /client route as a client principal.

    async with open_client(host, port, principal="client", private_key=seed,
                           replica="0", replica_key=replica_public_key) as link:
        await link.send(request_bytes)
        reply = await link.receive()

The handshake proves our principal name with its Ed25519 key and checks that the other
end holds ``replica_key`` (an impostor replica fails with HandshakeFailed
``bad_signature``). Frames are binary and at most ``max_frame`` bytes both ways.
``receive`` must be called to keep reading: unread replies stay in a small queue.

``send`` queues the frame for the link's one writer task, which sends every frame queued
meanwhile with one system call (many client sessions share one link, so requests come in
bursts); it waits only while the outbox is full, at most ``send_timeout_s``, after which
the link is closed. A frame accepted by ``send`` is written unless the link is lost first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import trio
import trio_websocket
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transport._ws import CONNECTION_ERRORS, close_quietly, collapse_single_group
from transport.batching import CorkedStream
from transport.connector import DialSettings, authenticated
from transport.errors import FrameTooLarge, LinkDown
from transport.frames import (
    CLIENT_ROUTE,
    CLOSE_OVERSIZED,
    CLOSE_TEXT_FRAME,
    KIB,
    FrameRejected,
    check_frame,
)
from transport.keys import Identity


@attrs.frozen
class ClientConfig:
    """Timeouts (seconds) and sizes for a client link."""

    connect_timeout_s: float = 5.0
    handshake_timeout_s: float = 5.0
    send_timeout_s: float = 5.0
    close_timeout_s: float = 1.0
    max_frame: int = 64 * KIB
    message_queue_size: int = 16
    outbox_size: int = 4096  # frames waiting for the writer


BATCH_BYTES = 64 * KIB  # the writer flushes at least this often


class ClientLink:
    """An authenticated connection to one replica's /client route."""

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        principal: str,
        replica: str,
        config: ClientConfig,
        stream: CorkedStream | None = None,
    ) -> None:
        self._ws = ws
        self.principal = principal
        self.replica = replica
        self._config = config
        self._stream = stream
        self._outbox, self._pending = trio.open_memory_channel[bytes](config.outbox_size)
        self._lost = False

    @property
    def closed(self) -> bool:
        return self._lost or self._ws.closed is not None

    async def send(self, data: bytes) -> None:
        """Queue one frame. Raises LinkDown if the connection is (or gets) closed.

        Waits only while the outbox is full, for at most ``send_timeout_s``; a send that
        times out closes the link. A cancelled send queues nothing, and the writer never
        leaves half a frame on the wire.
        """
        if len(data) > self._config.max_frame:
            raise FrameTooLarge(len(data), self._config.max_frame)
        if self.closed:
            raise LinkDown(f"connection to replica {self.replica} is closed")
        frame = bytes(data)
        try:
            self._outbox.send_nowait(frame)
            return
        except trio.WouldBlock:
            pass
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise LinkDown(f"connection to replica {self.replica} is closed") from None
        with trio.move_on_after(self._config.send_timeout_s):
            try:
                await self._outbox.send(frame)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise LinkDown(f"connection to replica {self.replica} is closed") from None
            return
        await self._lose()
        raise LinkDown(f"send to replica {self.replica} timed out")

    async def _lose(self) -> None:
        self._lost = True
        self._outbox.close()
        await close_quietly(self._ws, 1001, None, self._config.close_timeout_s)

    async def _writer(self) -> None:
        """The link's only writer: queued frames go out together, one write per burst."""
        ws, stream, pending = self._ws, self._stream, self._pending
        try:
            async for data in pending:
                if stream is None:
                    await ws.send_message(data)
                    continue
                stream.cork()
                await ws.send_message(data)
                if stream.buffered >= BATCH_BYTES or not pending.statistics().current_buffer_used:
                    await stream.flush()
        except CONNECTION_ERRORS:
            pass
        finally:
            self._lost = True
            self._outbox.close()

    async def receive(self) -> bytes:
        """The next frame from the replica. Raises LinkDown when the connection ends."""
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            code = exc.reason.code if exc.reason is not None else None
            raise LinkDown(f"replica {self.replica} closed the connection ({code})") from None
        try:
            return check_frame(message, self._config.max_frame)
        except FrameRejected as exc:
            code = CLOSE_TEXT_FRAME if exc.code == CLOSE_TEXT_FRAME else CLOSE_OVERSIZED
            await close_quietly(self._ws, code, exc.reason, self._config.close_timeout_s)
            raise LinkDown(f"replica {self.replica} sent a bad frame: {exc.reason}") from None

    async def aclose(self) -> None:
        await close_quietly(self._ws, 1000, None, self._config.close_timeout_s)


Dialer = Callable[[], Awaitable[trio.abc.Stream]]


@asynccontextmanager
async def open_client(
    host: str,
    port: int,
    *,
    principal: str,
    private_key: Ed25519PrivateKey | bytes,
    replica: str,
    replica_key: bytes,
    config: ClientConfig | None = None,
    dialer: Dialer | None = None,
) -> AsyncIterator[ClientLink]:
    """Connect, authenticate both ends, yield a ClientLink; close it on exit.

    Raises OSError / trio.TooSlowError when the replica cannot be reached in
    ``connect_timeout_s``, HandshakeFailed / Refused when authentication fails.
    """
    cfg = config or ClientConfig()
    identity = Identity(principal, private_key)
    with trio.fail_after(cfg.connect_timeout_s):
        if dialer is not None:
            stream = await dialer()
        else:
            stream = await trio.open_tcp_stream(host, port)
    settings = DialSettings(
        route=CLIENT_ROUTE,
        handshake_timeout_s=cfg.handshake_timeout_s,
        close_timeout_s=cfg.close_timeout_s,
        max_frame=cfg.max_frame,
        message_queue_size=cfg.message_queue_size,
    )
    corked = CorkedStream(stream)
    async with authenticated(corked, identity, replica, replica_key, settings, host) as ws:
        link = ClientLink(ws, principal, replica, cfg, corked)
        with collapse_single_group():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link._writer)
                try:
                    yield link
                finally:
                    # the writer sends what is queued and ends, within close_timeout_s
                    link._outbox.close()
                    nursery.cancel_scope.deadline = trio.current_time() + cfg.close_timeout_s
