"""Where the links' bytes travel: a `Network` dials a host:port and serves a `Listener`.

`TCP` (the default everywhere) opens TCP connections and serves on a TCP port. Anything
else with the same two methods can carry the same authenticated WebSocket links; the
tests wire a whole cluster in one process over Trio memory streams this way
(`tests/shell/memnet.py`), under the mock clock.

    dial = network.dialer("0", host, port)    # the dialing side names itself
    stream = await dial()                      # OSError when nothing listens there
    port = await nursery.start(network.serve, listener)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import trio

from transport.listener import Listener

Dialer = Callable[[], Awaitable[trio.abc.Stream]]


class Network(Protocol):
    def dialer(self, src: str, host: str, port: int) -> Dialer:
        """How `src` reaches host:port; the dialer raises OSError when it cannot."""
        ...

    async def serve(
        self, listener: Listener, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve `listener` at its configured address until cancelled; started(port)."""
        ...


class TcpNetwork:
    """TCP sockets: the network replicas and clients run on."""

    def dialer(self, src: str, host: str, port: int) -> Dialer:
        return partial(trio.open_tcp_stream, host, port)

    async def serve(
        self, listener: Listener, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await listener.serve(task_status=task_status)


TCP = TcpNetwork()
