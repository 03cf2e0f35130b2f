"""Listener: one replica's WebSocket endpoint, with a /peer and a /client route.

For every TCP connection: the WebSocket upgrade, the route check, the handshake (the
connector proves its name with its key from ``peer_keys`` or ``client_keys``; we prove
ours), all within ``handshake_timeout_s``; then a reader that drains every frame at once
into the caller's handler:

- /peer:   ``await on_peer_frame(peer_name, frame)``
- /client: ``await on_client_frame(conn, principal, frame)``; answer with ``conn.send``.

``frame`` is what the route's decoder returns (raw bytes by default). The reader awaits
the handler before reading on, so the handler must be quick: the replica's puts the frame
into its bounded inbox and DROPS it when full (counted) -- a handler that blocks stops
the reading, fills trio-websocket's small queue and starves pings and the close handshake
(trio-websocket #82). A newer authenticated connection from a peer replaces the older
(close 4006), so a peer that restarted, or stalled and came back, has one reader.

Every refusal (bad upgrade, unknown route, unknown name, bad signature, replayed hello,
handshake timeout, text / oversized / undecodable frame, a TLS certificate that names
another member) closes the connection with a code from ``transport.frames``, calls
``on_invalid(source, reason)`` and logs one line. Input never raises out of the
listener; an unexpected error in one connection is logged and ends that connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import attrs
import trio
import trio_websocket

from transport._ws import (
    WatchedStream,
    close_quietly,
    close_stream_quietly,
    library_refused_oversize,
    remote_host,
    set_receive_limit,
)
from transport.batching import CorkedStream
from transport.client_conn import ClientConn
from transport.errors import HandshakeFailed
from transport.fragments import Reassembler
from transport.frames import (
    BAD_UPGRADE,
    CLIENT_ROUTE,
    CLOSE_GOING_AWAY,
    CLOSE_HANDSHAKE_TIMEOUT,
    CLOSE_SLOW_CONSUMER,
    CLOSE_SUPERSEDED,
    CLOSE_WRONG_CERTIFICATE,
    HANDSHAKE_TIMEOUT,
    OVERSIZED,
    PEER_ROUTE,
    UNKNOWN_ROUTE,
    Decoder,
    FrameRejected,
    Limits,
    check_frame,
    close_code_for,
    decode_frame,
    identity_decoder,
)
from transport.handshake import ListenerHandshake, NonceCache
from transport.keys import Identity, KeyRing
from transport.reporting import FaultReporter, OnInvalid
from transport.tls_names import TLS_NAME_MISMATCH, names_member

log = logging.getLogger("transport")

PeerFrameHandler = Callable[[str, Any], Awaitable[None]]
ClientFrameHandler = Callable[[ClientConn, str, Any], Awaitable[None]]


@attrs.frozen
class ListenerConfig:
    """Where to listen, limits and timeouts (seconds, bytes)."""

    host: str = "127.0.0.1"
    port: int = 0
    limits: Limits = Limits()
    handshake_timeout_s: float = 5.0
    close_timeout_s: float = 1.0
    message_queue_size: int = 4  # trio-websocket's per-connection queue; we drain it at once
    receive_buffer_size: int = 64 * 1024
    max_client_connections: int = 1024
    client_outbox_size: int = 4096  # replies; a shared client connection gets batches
    replay_memory: int = 4096


class Listener:
    """Accepts, authenticates and reads peer and client connections."""

    def __init__(
        self,
        identity: Identity,
        *,
        peer_keys: Mapping[str, bytes],
        on_peer_frame: PeerFrameHandler,
        client_keys: Mapping[str, bytes] | None = None,
        on_client_frame: ClientFrameHandler | None = None,
        on_invalid: OnInvalid | None = None,
        peer_decoder: Decoder = identity_decoder,
        client_decoder: Decoder = identity_decoder,
        config: ListenerConfig | None = None,
    ) -> None:
        self.identity = identity
        self.config = config or ListenerConfig()
        self._peer_keys = KeyRing(peer_keys)
        self._client_keys = KeyRing(client_keys or {})
        self._on_peer_frame = on_peer_frame
        self._on_client_frame = on_client_frame
        self._peer_decoder = peer_decoder
        self._client_decoder = client_decoder
        self.faults = FaultReporter(on_invalid)  # also the TLS layer's (tls.py)
        self._seen = NonceCache(self.config.replay_memory)
        self._peer_scopes: dict[str, trio.CancelScope] = {}
        self._peer_joined = trio.Event()  # set (and replaced) when a peer connects
        self._clients: set[ClientConn] = set()
        self._latest_client: dict[str, ClientConn] = {}  # principal -> newest connection
        self.port: int | None = None
        self.open_connections = 0  # connection handler tasks alive (handshaking or serving)

    @property
    def peers(self) -> frozenset[str]:
        """Names of peers with an authenticated inbound connection now."""
        return frozenset(self._peer_scopes)

    async def wait_peer(self, name: str) -> None:
        """Return once `name` has an authenticated inbound connection."""
        while name not in self._peer_scopes:
            await self._peer_joined.wait()

    @property
    def clients(self) -> int:
        """Number of authenticated client connections now."""
        return len(self._clients)

    def client_for(self, principal: str) -> ClientConn | None:
        """The newest open connection of `principal`, or None. One principal runs many
        client sessions over one connection; a replica answers a session that never
        wrote to it (it sent its request to the primary only) on this connection."""
        conn = self._latest_client.get(principal)
        return conn if conn is not None and not conn.closed else None

    async def serve(
        self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED, accept=None
    ) -> None:
        """Listen on host:port until cancelled; ``nursery.start`` returns the bound port.
        ``accept`` (a TLS layer) takes each raw stream instead of ``handle_stream``."""
        cfg = self.config
        handler = accept or self.handle_stream
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, handler, cfg.port, host=cfg.host)
            )
            self.port = listeners[0].socket.getsockname()[1]
            log.info(
                "event=listening name=%s host=%s port=%s", self.identity.name, cfg.host, self.port
            )
            task_status.started(self.port)

    async def handle_stream(self, raw: trio.abc.Stream) -> None:
        """Serve one incoming connection on any trio stream (TCP, or memory in tests)."""
        stream = WatchedStream(raw)
        host, addr = remote_host(raw)
        self.open_connections += 1
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await self._connection(nursery, stream, host, addr)
                finally:
                    nursery.cancel_scope.cancel()
        except* Exception:
            log.exception("event=connection_error remote=%s", addr)
        finally:
            await close_stream_quietly(stream)
            self.open_connections -= 1

    # ----------------------------------------------------------------- phases

    async def _connection(
        self, nursery: trio.Nursery, stream: WatchedStream, host: str, addr: str
    ) -> None:
        cfg = self.config
        deadline = trio.current_time() + cfg.handshake_timeout_s
        corked = CorkedStream(stream)  # lets a client's writer send its replies together
        request = await self._upgrade(nursery, stream, corked, host, addr, deadline)
        if request is None:
            return
        route = request.path
        if route == PEER_ROUTE:
            known = self._peer_keys
        elif route == CLIENT_ROUTE and self._on_client_frame is not None:
            known = self._client_keys
        else:
            self.faults.invalid(host, UNKNOWN_ROUTE, remote=addr, route=route[:64])
            await self._reject(request, 404)
            return
        if route == CLIENT_ROUTE and len(self._clients) >= cfg.max_client_connections:
            log.warning("event=client_refused reason=too_many remote=%s", addr)
            await self._reject(request, 503)
            return
        ws: trio_websocket.WebSocketConnection | None = None
        with trio.move_on_at(deadline) as timer:
            try:
                ws = await request.accept()
            except trio_websocket.ConnectionClosed:
                return
        if timer.cancelled_caught or ws is None:
            self.faults.invalid(host, HANDSHAKE_TIMEOUT, remote=addr, stage="accept")
            return
        set_receive_limit(ws, cfg.limits.handshake_max_frame)
        principal = await self._authenticate(ws, route, known, host, addr, deadline)
        if principal is None:
            return
        if not names_member(stream, route == PEER_ROUTE, principal):
            self.faults.invalid(host, TLS_NAME_MISMATCH, remote=addr, claimed=principal)
            await close_quietly(ws, CLOSE_WRONG_CERTIFICATE, TLS_NAME_MISMATCH, cfg.close_timeout_s)
            return
        set_receive_limit(ws, cfg.limits.for_route(route))
        if route == PEER_ROUTE:
            await self._serve_peer(ws, principal, addr)
        else:
            await self._serve_client(ws, principal, addr, corked)

    async def _upgrade(
        self,
        nursery: trio.Nursery,
        stream: WatchedStream,
        corked: CorkedStream,
        host: str,
        addr: str,
        deadline: float,
    ) -> trio_websocket.WebSocketRequest | None:
        """Wait for the HTTP upgrade request, the stream's death, or the deadline."""
        cfg = self.config
        request: trio_websocket.WebSocketRequest | None = None
        with trio.move_on_at(deadline) as timer:
            async with trio.open_nursery() as race:

                async def stream_died() -> None:
                    await stream.gone.wait()
                    race.cancel_scope.cancel()

                race.start_soon(stream_died)
                request = await trio_websocket.wrap_server_stream(
                    nursery,
                    corked,
                    message_queue_size=cfg.message_queue_size,
                    max_message_size=max(cfg.limits.peer_max_frame, cfg.limits.client_max_frame),
                    receive_buffer_size=cfg.receive_buffer_size,
                )
                race.cancel_scope.cancel()
        if request is None:
            if timer.cancelled_caught:
                self.faults.invalid(host, HANDSHAKE_TIMEOUT, remote=addr, stage="upgrade")
            elif stream.bytes_in > 0:
                self.faults.invalid(host, BAD_UPGRADE, remote=addr)
            else:
                log.debug("event=closed_before_upgrade remote=%s", addr)
        return request

    async def _reject(self, request: trio_websocket.WebSocketRequest, status: int) -> None:
        with trio.move_on_after(self.config.close_timeout_s):
            try:
                await request.reject(status)
            except trio_websocket.ConnectionClosed:
                pass

    async def _authenticate(
        self,
        ws: trio_websocket.WebSocketConnection,
        route: str,
        known: KeyRing,
        host: str,
        addr: str,
        deadline: float,
    ) -> str | None:
        """Run the listener side of the handshake; the authenticated name, or None."""
        cfg = self.config
        hs = ListenerHandshake(self.identity, route, known, seen=self._seen)
        limit = cfg.limits.handshake_max_frame
        try:
            with trio.move_on_at(deadline):
                await ws.send_message(hs.on_hello(check_frame(await ws.get_message(), limit)))
                await ws.send_message(hs.on_proof(check_frame(await ws.get_message(), limit)))
                return hs.principal
            self.faults.invalid(host, HANDSHAKE_TIMEOUT, remote=addr, claimed=hs.claimed)
            await close_quietly(ws, CLOSE_HANDSHAKE_TIMEOUT, HANDSHAKE_TIMEOUT, cfg.close_timeout_s)
        except (FrameRejected, HandshakeFailed) as exc:
            self.faults.invalid(
                host, exc.reason, remote=addr, route=route, claimed=hs.claimed, detail=exc.detail
            )
            await close_quietly(ws, close_code_for(exc.reason), exc.reason, cfg.close_timeout_s)
        except trio_websocket.ConnectionClosed:
            if library_refused_oversize(ws):
                self.faults.invalid(host, OVERSIZED, remote=addr, claimed=hs.claimed)
            else:
                log.debug("event=closed_in_handshake remote=%s claimed=%s", addr, hs.claimed)
        return None

    async def _serve_peer(
        self, ws: trio_websocket.WebSocketConnection, name: str, addr: str
    ) -> None:
        scope = trio.CancelScope()
        previous = self._peer_scopes.get(name)
        self._peer_scopes[name] = scope
        if previous is not None:
            previous.cancel()  # the older connection from this peer closes with 4006
        joined, self._peer_joined = self._peer_joined, trio.Event()
        joined.set()
        log.info("event=peer_connected peer=%s remote=%s", name, addr)
        limits = self.config.limits
        try:
            with scope:
                await self._read_frames(
                    ws,
                    name,
                    limits.peer_max_frame,
                    self._peer_decoder,
                    partial(self._on_peer_frame, name),
                    Reassembler(limits.peer_max_message),
                )
        finally:
            if self._peer_scopes.get(name) is scope:
                del self._peer_scopes[name]
            code = CLOSE_SUPERSEDED if scope.cancelled_caught else CLOSE_GOING_AWAY
            await close_quietly(ws, code, None, self.config.close_timeout_s)
            log.info("event=peer_disconnected peer=%s remote=%s", name, addr)

    async def _serve_client(
        self,
        ws: trio_websocket.WebSocketConnection,
        principal: str,
        addr: str,
        stream: CorkedStream | None = None,
    ) -> None:
        cfg = self.config
        conn = ClientConn(
            principal,
            addr,
            ws,
            max_frame=cfg.limits.client_max_frame,
            outbox_size=cfg.client_outbox_size,
            stream=stream,
        )
        assert self._on_client_frame is not None
        deliver = partial(self._on_client_frame, conn, principal)
        self._clients.add(conn)
        self._latest_client[principal] = conn
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn._write_replies, nursery.cancel_scope)
                await self._read_frames(
                    ws, principal, cfg.limits.client_max_frame, self._client_decoder, deliver
                )
                nursery.cancel_scope.cancel()
        finally:
            self._clients.discard(conn)
            if self._latest_client.get(principal) is conn:
                del self._latest_client[principal]
            conn._mark_closed()
            code = CLOSE_SLOW_CONSUMER if conn.slow else CLOSE_GOING_AWAY
            await close_quietly(ws, code, None, cfg.close_timeout_s)

    async def _read_frames(
        self,
        ws: trio_websocket.WebSocketConnection,
        source: str,
        limit: int,
        decoder: Decoder,
        deliver: Callable[[Any], Awaitable[None]],
        joiner: Reassembler | None = None,
    ) -> None:
        """Drain frames into ``deliver`` until the connection ends or breaks a rule
        (joining fragmented messages first, with a ``joiner``)."""
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                if library_refused_oversize(ws):
                    self.faults.invalid(source, OVERSIZED, limit=limit)
                return
            try:
                data = check_frame(message, limit)
                if joiner is not None:
                    data = joiner.feed(data)
                    if data is None:
                        continue
                item = decode_frame(data, decoder)
            except FrameRejected as exc:
                self.faults.invalid(source, exc.reason, detail=exc.detail)
                await close_quietly(ws, exc.code, exc.reason, self.config.close_timeout_s)
                return
            await deliver(item)
