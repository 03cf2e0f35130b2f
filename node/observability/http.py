"""A small HTTP/1.1 server on Trio (h11) for /metrics, /status and /healthz.

It serves GET only, one request per connection at a time with keep-alive, a size limit on
request heads and a timeout on every read, so a slow or hostile scraper costs one task
and nothing else. Handlers are plain callables returning (status, content type, body).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import h11
import trio

log = logging.getLogger("bft.http")

Handler = Callable[[], tuple[int, str, bytes]]

MAX_HEAD = 16 * 1024
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


async def _send(
    stream: trio.abc.Stream, conn: h11.Connection, status: int, ctype: str, body: bytes
) -> None:
    headers = [
        ("content-type", ctype),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
    ]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _handle(stream: trio.SocketStream, routes: dict[str, Handler]) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        while True:
            event = None
            with trio.move_on_after(READ_TIMEOUT_S):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(4096))
                        continue
                    break
            if event is None or isinstance(event, h11.ConnectionClosed):
                return
            if not isinstance(event, h11.Request):
                return
            target = event.target.decode("ascii", "replace").split("?", 1)[0]
            handler = routes.get(target)
            if event.method not in (b"GET", b"HEAD"):
                await _send(stream, conn, 405, "text/plain", b"GET only\n")
            elif handler is None:
                await _send(stream, conn, 404, "text/plain", b"not found\n")
            else:
                try:
                    status, ctype, body = handler()
                except Exception:
                    log.exception("event=http_handler_error path=%s", target)
                    status, ctype, body = 500, "text/plain", b"internal error\n"
                await _send(stream, conn, status, ctype, body)
            # drain the (empty) request body, then start over for keep-alive
            while conn.next_event() not in (h11.PAUSED, h11.NEED_DATA):
                pass
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (h11.RemoteProtocolError, h11.LocalProtocolError):
        try:
            await stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        except trio.BrokenResourceError:
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def serve_http(
    host: str,
    port: int,
    routes: dict[str, Handler],
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound port through `task_status`."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    limiter = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def one(stream: trio.SocketStream) -> None:
        async with limiter:
            await _handle(stream, routes)

    async with trio.open_nursery() as nursery:
        bound = listeners[0].socket.getsockname()[1]
        await nursery.start(trio.serve_listeners, one, listeners)
        task_status.started(bound)
