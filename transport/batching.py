"""Write coalescing for a link's single writer: many small frames, one socket write.

trio-websocket writes every message with its own ``send_all`` -- one system call per
200-byte frame. ``CorkedStream`` sits under the WebSocket connection: while the writer
holds it corked, the bytes of each frame (and of any ping or close frame sent meanwhile)
are appended to a buffer, and ``flush`` writes them in one call. Ordering is preserved:
trio-websocket serializes its writes with a FIFO lock held across ``send_all``, and the
flush shares a FIFO lock with uncorked writes, so bytes reach the socket in the order
the WebSocket protocol produced them. Frames larger than ``direct_bytes`` bypass the
buffer (after whatever is buffered) to avoid copying state-transfer chunks.
"""

from __future__ import annotations

import trio


class CorkedStream(trio.abc.Stream):
    """A stream whose writes can be held back and sent together."""

    def __init__(self, inner: trio.abc.Stream, *, direct_bytes: int = 16 * 1024) -> None:
        self.inner = inner
        self._buffer = bytearray()
        self._corked = False
        self._direct_bytes = direct_bytes
        self._lock = trio.StrictFIFOLock()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def cork(self) -> None:
        """Hold writes in the buffer until ``flush``."""
        self._corked = True

    async def flush(self) -> None:
        """Stop holding writes and send whatever is buffered."""
        self._corked = False
        async with self._lock:
            if self._buffer:
                data = bytes(self._buffer)
                self._buffer.clear()
                await self.inner.send_all(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._corked and len(data) < self._direct_bytes:
            self._buffer += data
            return
        async with self._lock:
            if self._buffer:
                pending = bytes(self._buffer)
                self._buffer.clear()
                await self.inner.send_all(pending)
            await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        self._buffer.clear()
        await self.inner.aclose()
