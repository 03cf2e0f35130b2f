"""The connecting side of a link: WebSocket upgrade plus handshake over a given stream.

Used by ``PeerLink`` (route /peer) and by ``transport.client`` (route /client). The
stream comes from the caller (a TCP connection, or a memory stream in tests), so the same
code runs over both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio
import trio_websocket

from transport._ws import (
    close_quietly,
    close_stream_quietly,
    collapse_single_group,
    set_receive_limit,
)
from transport.errors import HandshakeFailed, Refused
from transport.frames import (
    CLOSE_NORMAL,
    HANDSHAKE_TIMEOUT,
    REASON_FOR_CLOSE_CODE,
    FrameRejected,
    check_frame,
    close_code_for,
)
from transport.handshake import ConnectorHandshake
from transport.keys import Identity

log = logging.getLogger("transport")


@attrs.frozen
class DialSettings:
    """How the connecting side runs the upgrade and handshake."""

    route: str
    handshake_timeout_s: float = 5.0
    close_timeout_s: float = 1.0
    handshake_max_frame: int = 4096
    max_frame: int = 4096  # largest frame we accept from the listener after the handshake
    message_queue_size: int = 4
    receive_buffer_size: int = 64 * 1024
    final_close_code: int = CLOSE_NORMAL


@asynccontextmanager
async def authenticated(
    stream: trio.abc.Stream,
    identity: Identity,
    listener: str,
    listener_key: bytes,
    settings: DialSettings,
    host_header: str = "localhost",
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Upgrade ``stream``, authenticate both ends, yield the WebSocket connection.

    Raises HandshakeFailed (our check of the listener failed, or the handshake timed out),
    Refused (the listener closed the connection during the handshake, with its code), or a
    trio-websocket / trio connection error. The stream is closed on exit.
    """
    with collapse_single_group():
        async with trio.open_nursery() as nursery:
            ws: trio_websocket.WebSocketConnection | None = None
            try:
                hs = ConnectorHandshake(identity, settings.route, listener, listener_key)
                with trio.move_on_after(settings.handshake_timeout_s) as timer:
                    ws = await trio_websocket.wrap_client_stream(
                        nursery,
                        stream,  # type: ignore[arg-type]  # any trio Stream works
                        host_header,
                        settings.route,
                        message_queue_size=settings.message_queue_size,
                        max_message_size=settings.handshake_max_frame,
                        receive_buffer_size=settings.receive_buffer_size,
                    )
                    await _exchange(ws, hs, settings.handshake_max_frame)
                if timer.cancelled_caught:
                    raise HandshakeFailed(HANDSHAKE_TIMEOUT, f"with {listener!r}")
                set_receive_limit(ws, settings.max_frame)
                yield ws
            except HandshakeFailed as exc:
                if ws is not None and not isinstance(exc, Refused):
                    await close_quietly(
                        ws, close_code_for(exc.reason), exc.reason, settings.close_timeout_s
                    )
                raise
            finally:
                if ws is not None:
                    await close_quietly(
                        ws, settings.final_close_code, None, settings.close_timeout_s
                    )
                nursery.cancel_scope.cancel()
                await close_stream_quietly(stream)


async def _exchange(
    ws: trio_websocket.WebSocketConnection, hs: ConnectorHandshake, limit: int
) -> None:
    await ws.send_message(hs.hello())
    challenge = await _receive(ws, limit)
    await ws.send_message(hs.on_challenge(challenge))
    hs.on_welcome(await _receive(ws, limit))


async def _receive(ws: trio_websocket.WebSocketConnection, limit: int) -> bytes:
    try:
        message = await ws.get_message()
    except trio_websocket.ConnectionClosed as exc:
        code = exc.reason.code if exc.reason is not None else None
        reason = REASON_FOR_CLOSE_CODE.get(code or 0, "closed")
        raise Refused(reason, f"listener closed with {code}", code=code) from None
    try:
        return check_frame(message, limit)
    except FrameRejected as exc:
        raise HandshakeFailed(exc.reason, exc.detail) from None
