"""ClientConn: the listener's end of one authenticated client connection.

Frames from the client reach ``on_client_frame(conn, principal, frame)``; the replica
answers with ``conn.send(reply)`` on the same connection. Replies go through a small
outbox drained by one writer task, so ``send`` never waits on a slow client: a client
that lets ``outbox_size`` replies pile up is disconnected (close 4008) and ``send``
raises LinkDown -- a slow client cannot stall the replica.
"""

from __future__ import annotations

import logging

import trio
import trio_websocket

from transport._ws import CONNECTION_ERRORS
from transport.errors import FrameTooLarge, LinkDown

log = logging.getLogger("transport")


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
    ) -> None:
        self.principal = principal
        self.remote = remote
        self._ws = ws
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
        try:
            async for data in self._pending:
                await self._ws.send_message(data)
        except CONNECTION_ERRORS as exc:
            log.debug("event=client_write_failed remote=%s error=%r", self.remote, exc)
        finally:
            scope.cancel()

    def _mark_closed(self) -> None:
        self._closed = True
        self._outbox.close()
        self._pending.close()
