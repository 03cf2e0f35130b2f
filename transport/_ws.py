"""Small helpers around trio-websocket shared by the listener and the connecting side.

Kept in one place because two of them lean on trio-websocket details:
``set_receive_limit`` adjusts a connection's ``max_message_size`` after the route is
known (the library fixes it when the connection object is created, before the HTTP
upgrade names the route), and ``WatchedStream`` notices a connection that dies before
its upgrade completes (the library then never hands us a request). Our own per-route
frame check stays in force whatever the library does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio
import trio_websocket

log = logging.getLogger("transport")

ABORT_WAIT_S = 0.05  # how long a close frame may take to leave during shutdown

# Errors that mean "this connection is gone", whichever layer noticed first.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    trio_websocket.ConnectionClosed,
    trio_websocket.HandshakeError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    OSError,
)


class WatchedStream(trio.abc.Stream):
    """A stream wrapper that records whether bytes arrived and when the stream died."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.bytes_in = 0
        self.gone = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.gone.set()
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self.inner.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.gone.set()
            raise
        if not data:
            self.gone.set()
        self.bytes_in += len(data)
        return data

    async def aclose(self) -> None:
        self.gone.set()
        await self.inner.aclose()


def remote_host(stream: trio.abc.Stream) -> tuple[str, str]:
    """(host, host:port) of the far end, or a placeholder for non-socket streams (through
    our wrappers and TLS)."""
    while isinstance(stream, WatchedStream | trio.SSLStream):
        stream = stream.inner if isinstance(stream, WatchedStream) else stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        try:
            host, port, *_ = stream.socket.getpeername()
        except OSError:
            return "unknown", "unknown"
        return str(host), f"{host}:{port}"
    name = type(stream).__name__
    return name, name


def set_receive_limit(ws: trio_websocket.WebSocketConnection, limit: int) -> None:
    """Make trio-websocket refuse (close 1009) incoming messages over ``limit`` bytes."""
    if hasattr(ws, "_max_message_size"):
        ws._max_message_size = limit


def library_refused_oversize(ws: trio_websocket.WebSocketConnection) -> bool:
    """True if the connection was closed with 1009 (message too big)."""
    closed = ws.closed
    return closed is not None and closed.code == 1009


async def close_quietly(
    ws: trio_websocket.WebSocketConnection, code: int, reason: str | None, timeout: float
) -> None:
    """Close ``ws`` with ``code``, waiting at most ``timeout`` s, even while cancelled.

    Shielded so that cleanup after a cancellation still sends the close frame; bounded
    so that a peer that never answers the close handshake cannot hold us (trio-websocket
    #182 and friends). When the caller is already cancelled (shutdown), trio-websocket's
    reader task is being cancelled too and can never see the answer, so we only give
    the close frame ``ABORT_WAIT_S`` to leave and then drop the connection. Errors from an
    already dead connection are ignored.
    """
    if trio.current_effective_deadline() == -math.inf:
        timeout = min(timeout, ABORT_WAIT_S)
    with trio.move_on_after(timeout, shield=True):
        try:
            await ws.aclose(code, reason)
        except CONNECTION_ERRORS as exc:
            log.debug("event=close_error code=%s error=%r", code, exc)


async def close_stream_quietly(stream: trio.abc.Stream) -> None:
    """Close a raw stream, ignoring a peer that already vanished."""
    with trio.CancelScope(shield=True):
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


@contextmanager
def collapse_single_group() -> Iterator[None]:
    """Re-raise a one-exception group as that exception alone.

    Our context managers hold a nursery (trio-websocket's reader task lives in it), so
    anything raised inside them arrives wrapped in an ExceptionGroup. When exactly one
    exception is inside, callers get it bare; ``except*`` handles both forms.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        found = list(leaves(group))
        if len(found) != 1:
            raise
        leaf = found[0]
        context = leaf.__context__
        try:
            raise leaf  # noqa: B904 -- the group is only a wrapper around it
        finally:
            leaf.__context__ = context
            del leaf, context


def leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    """Every non-group exception inside ``group``, depth first."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc
