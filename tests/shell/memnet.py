"""A `transport.Network` over Trio memory streams, for whole clusters in one test process.

Each listener registers under its configured host:port while its replica runs; a dial
creates a `trio.testing.memory_stream_pair`, hands one end to the listener's own serving
task (so a replica's inbound connections die with it), and returns the other. Dialing an
address where nothing serves, or across a cut, raises `ConnectionRefusedError` as TCP
would. `cut(a, b)` also stalls the streams already open between `a` and `b`: what is sent
is held, not delivered, so the far side notices only by its keepalive timeouts, like a
real partition. `heal(a, b)` lets new connections through again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing

from transport import Listener

Dialer = Callable[[], Awaitable[trio.abc.Stream]]
BACKLOG = 64


class _Wire(trio.abc.Stream):
    """One end of a memory connection that goes silent once its link is cut."""

    def __init__(self, inner: trio.abc.Stream, cut: Callable[[], bool]) -> None:
        self.inner = inner
        self._cut = cut

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._cut():
            await trio.sleep_forever()  # a partition drops the bytes; TCP just stalls
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        while self._cut() and data:  # bytes in flight when the cut came are lost too
            data = await self.inner.receive_some(max_bytes)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class MemoryNetwork:
    """Addresses to listeners, and which pairs of names are cut off from each other."""

    def __init__(self) -> None:
        self._inboxes: dict[tuple[str, int], trio.MemorySendChannel[trio.abc.Stream]] = {}
        self._names: dict[tuple[str, int], str] = {}
        self._cuts: set[frozenset[str]] = set()

    def cut(self, a: str, b: str) -> None:
        self._cuts.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        self._cuts.discard(frozenset((a, b)))

    def is_cut(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._cuts

    def dialer(self, src: str, host: str, port: int) -> Dialer:
        async def dial() -> trio.abc.Stream:
            await trio.lowlevel.checkpoint()
            inbox = self._inboxes.get((host, port))
            dst = self._names.get((host, port), "")
            if inbox is None or self.is_cut(src, dst):
                raise ConnectionRefusedError(f"{src} -> {host}:{port}: connection refused")
            near, far = trio.testing.memory_stream_pair()
            try:
                inbox.send_nowait(_Wire(far, lambda: self.is_cut(src, dst)))
            except (trio.WouldBlock, trio.BrokenResourceError):
                raise ConnectionRefusedError(f"{host}:{port}: backlog full") from None
            return _Wire(near, lambda: self.is_cut(src, dst))

        return dial

    async def serve(
        self, listener: Listener, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        address = (listener.config.host, listener.config.port)
        if address in self._inboxes:
            raise OSError(f"{address} is in use")
        send, receive = trio.open_memory_channel[trio.abc.Stream](BACKLOG)
        self._inboxes[address] = send
        self._names[address] = listener.identity.name
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(listener.config.port)
                async for stream in receive:
                    nursery.start_soon(listener.handle_stream, stream)
        finally:
            del self._inboxes[address]
