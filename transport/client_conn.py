"""ClientConn: the listener's end of one authenticated client connection.

Frames from the client reach ``on_client_frame(conn, principal, frame)``; the replica
answers with ``conn.send(reply)`` (or ``conn.send_nowait(reply)``, which does not yield)
on the same connection. Replies go through an outbox drained by one writer task, so
sending never waits on a slow client: a client that lets ``outbox_size`` replies pile up
is disconnected (close 4008) and the send raises LinkDown -- a slow client cannot stall
the replica. When the connection runs over a ``CorkedStream``, the writer sends the replies
queued together with one system call (many client sessions share
one connection, so a batch of replies is common): it holds the bytes back until the
outbox is empty (or ``BATCH_BYTES`` are waiting) and then writes them at once.
"""

from __future__ import annotations

import logging

import trio
import trio_websocket

from transport._ws import CONNECTION_ERRORS
from transport.batching import CorkedStream
from transport.errors import FrameTooLarge, LinkDown

log = logging.getLogger("transport")

BATCH_BYTES = 64 * 1024  # the writer flushes at least this often


class ClientConn:
    """One authenticated client connection, as seen by the replica."""

    def __init__(
        self,
        principal: str,
        remote: str,
        ws: trio_websocket.WebSocketConnection,
        *,
        max_frame: int,
        outbox_size: int,
        stream: CorkedStream | None = None,
    ) -> None:
        self.principal = principal
        self.remote = remote
        self._ws = ws
        self._stream = stream
        self._max_frame = max_frame
        self._outbox, self._pending = trio.open_memory_channel[bytes](outbox_size)
        self._closed = False
        self._scope: trio.CancelScope | None = None
        self.slow = False

    def __repr__(self) -> str:
        return f"ClientConn(principal={self.principal!r}, remote={self.remote!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, data: bytes) -> None:
        """Queue a reply for this client without waiting on the network.

        Raises LinkDown if the connection is closed or the client is too slow to read
        (the connection is then closed); FrameTooLarge above the client frame limit.
        """
        await trio.lowlevel.checkpoint()
        self.send_nowait(data)

    def send_nowait(self, data: bytes) -> None:
        """``send`` without yielding to the scheduler (same errors)."""
        if len(data) > self._max_frame:
            raise FrameTooLarge(len(data), self._max_frame)
        if self._closed:
            raise LinkDown(f"client connection {self.remote} is closed")
        try:
            self._outbox.send_nowait(bytes(data))
        except trio.WouldBlock:
            log.warning(
                "event=slow_client principal=%s remote=%s queued=%d",
                self.principal,
                self.remote,
                self._outbox.statistics().current_buffer_used,
            )
            self.slow = True
            self.close()
            raise LinkDown(f"client {self.remote} does not read its replies") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise LinkDown(f"client connection {self.remote} is closed") from None

    def close(self) -> None:
        """End the connection (its handler closes the WebSocket, bounded in time)."""
        self._closed = True
        self._outbox.close()
        if self._scope is not None:
            self._scope.cancel()

    async def _write_replies(self, scope: trio.CancelScope) -> None:
        """The connection's single writer; ends the connection when it fails."""
        self._scope = scope
        ws, stream, pending = self._ws, self._stream, self._pending
        try:
            async for data in pending:
                if stream is None:
                    await ws.send_message(data)
                    continue
                stream.cork()
                await ws.send_message(data)
                # let the producer run (a reply per checkpoint, as an uncorked write
                # would), so a client that never reads still fills the outbox
                await trio.lowlevel.checkpoint()
                if stream.buffered >= BATCH_BYTES or not pending.statistics().current_buffer_used:
                    await stream.flush()
        except CONNECTION_ERRORS as exc:
            log.debug("event=client_write_failed remote=%s error=%r", self.remote, exc)
        finally:
            scope.cancel()

    def _mark_closed(self) -> None:
        self._closed = True
        self._outbox.close()
        self._pending.close()
