"""PeerLink: the outbound, send-only, authenticated link from this replica to one peer.

One PeerLink per remote replica. ``run`` (started with ``nursery.start``) connects with
exponential backoff and jitter, authenticates on route /peer, keeps the link alive with
WebSocket ping/pong, and reconnects after any loss, until cancelled. While connected,
one writer task drains a bounded outbox into the socket, so a caller cancelled in
``send`` can never leave half a frame on the wire. The remote's messages to us do not
come back on this link: they arrive on *its* PeerLink to our listener.

Liveness: every ``keepalive_interval_s`` the link sends a ping; no pong within
``keepalive_timeout_s`` (a crashed, partitioned or SIGSTOPped peer, or one whose socket
buffer is full) drops the link, so a half-dead peer is noticed within
``keepalive_interval_s + keepalive_timeout_s``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import attrs
import trio
import trio_websocket

from transport._ws import CONNECTION_ERRORS, close_quietly, close_stream_quietly, leaves
from transport.batching import CorkedStream
from transport.connector import DialSettings, authenticated
from transport.errors import FrameTooLarge, HandshakeFailed, LinkDown, Refused
from transport.fragments import split
from transport.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_UNEXPECTED_FRAME,
    HANDSHAKE_TIMEOUT,
    MIB,
    PEER_ROUTE,
    UNEXPECTED_FRAME,
)
from transport.keys import Identity, check_name, load_public_key
from transport.reporting import FaultReporter, OnInvalid

log = logging.getLogger("transport")

Dialer = Callable[[], Awaitable[trio.abc.Stream]]
OnState = Callable[[str, bool], None]

BATCH_BYTES = 64 * 1024  # flush the writer's batch at least this often
YIELD_EVERY = 64  # a send with room in the outbox yields once per this many sends


@attrs.frozen
class LinkConfig:
    """Timeouts, backoff and sizes of a PeerLink (seconds, bytes, frames)."""

    connect_timeout_s: float = 5.0
    handshake_timeout_s: float = 5.0
    close_timeout_s: float = 1.0
    keepalive_interval_s: float = 1.0
    keepalive_timeout_s: float = 2.0
    ping_timeout_s: float = 2.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    backoff_reset_after_s: float = 2.0  # a session at least this long resets the backoff
    outbox_size: int = 1024
    max_frame: int = 16 * MIB
    #: a message above ``max_frame`` leaves as fragments, up to this size in all
    max_message: int = 512 * MIB


class PeerLink:
    """The authenticated, self-healing, send-only link to one peer replica."""

    def __init__(
        self,
        identity: Identity,
        peer: str,
        peer_key: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: LinkConfig | None = None,
        on_state: OnState | None = None,
        on_invalid: OnInvalid | None = None,
        rng: random.Random | None = None,
        dialer: Dialer | None = None,
    ) -> None:
        self.identity = identity
        self.peer = check_name(peer)
        self._peer_key = bytes(peer_key)
        load_public_key(self._peer_key)  # fail fast on bad configuration
        self.host = host
        self.port = port
        self.config = config or LinkConfig()
        self._on_state = on_state
        self._faults = FaultReporter(on_invalid)
        self._rng = rng or random.Random()
        self._dialer = dialer or self._dial_tcp
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._outbox: trio.MemorySendChannel[bytes] | None = None
        self._up = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._ping_ids = 0
        self._sends_since_yield = 0
        self.last_rtt: float | None = None
        self._last_warning = ""
        self.connects = 0  # authenticated sessions so far
        self.failures = 0  # consecutive failed or short sessions (drives the backoff)

    # ----------------------------------------------------------------- public API

    @property
    def connected(self) -> bool:
        return self._outbox is not None

    async def wait_connected(self) -> None:
        """Return once the link is connected (callers bound this with a timeout)."""
        await self._up.wait()

    async def send(self, data: bytes) -> None:
        """Queue one frame for the peer, waiting only when the outbox is full.

        Raises LinkDown at once when not connected, or if the link is lost while waiting;
        FrameTooLarge if ``data`` exceeds ``max_message``. A frame accepted here is
        written unless the link is lost first (delivery is not acknowledged). The writer
        puts a message above ``max_frame`` on the wire as fragments, all in a row.

        For throughput, a send that finds room in the outbox does not yield to the
        scheduler except once every ``YIELD_EVERY`` sends, so a burst of frames reaches
        the writer together and leaves in one socket write; a send that has to wait for
        room is an ordinary checkpoint.
        """
        if len(data) > self.config.max_message:
            raise FrameTooLarge(len(data), self.config.max_message)
        outbox = self._outbox
        if outbox is None:
            raise LinkDown(f"link to {self.peer} is down")
        try:
            outbox.send_nowait(bytes(data))
        except trio.WouldBlock:
            try:
                await outbox.send(bytes(data))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise LinkDown(f"link to {self.peer} was lost") from None
            return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise LinkDown(f"link to {self.peer} was lost") from None
        self._sends_since_yield += 1
        if self._sends_since_yield >= YIELD_EVERY:
            self._sends_since_yield = 0
            await trio.lowlevel.checkpoint()

    def try_send(self, data: bytes) -> bool:
        """Queue one frame without waiting; False if the outbox is full. Raises LinkDown,
        or FrameTooLarge above ``max_frame`` (no fragments without waiting)."""
        self._check_size(data)
        outbox = self._outbox
        if outbox is None:
            raise LinkDown(f"link to {self.peer} is down")
        try:
            outbox.send_nowait(bytes(data))
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise LinkDown(f"link to {self.peer} was lost") from None
        return True

    async def ping(self) -> float:
        """Round-trip time of one WebSocket ping, in seconds. Raises LinkDown on failure."""
        ws = self._ws
        if ws is None:
            raise LinkDown(f"link to {self.peer} is down")
        rtt = await self._ping(ws, self.config.ping_timeout_s)
        if rtt is None:
            raise LinkDown(f"no pong from {self.peer} within {self.config.ping_timeout_s}s")
        return rtt

    def close(self) -> None:
        """Stop ``run``: the current connection is closed (bounded) and run returns."""
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the link up until cancelled (or ``close``). Ready at once."""
        with trio.CancelScope() as self._scope:
            task_status.started()
            while True:
                began = trio.current_time()
                authenticated_once = await self._session()
                lasted = trio.current_time() - began
                if authenticated_once and lasted >= self.config.backoff_reset_after_s:
                    self.failures = 0
                else:
                    self.failures += 1
                await trio.sleep(self.backoff_delay(self.failures))

    def backoff_delay(self, failures: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        cfg = self.config
        ceiling = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2 ** min(failures, 30)))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    # ----------------------------------------------------------------- internals

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.config.max_frame:
            raise FrameTooLarge(len(data), self.config.max_frame)

    async def _dial_tcp(self) -> trio.abc.Stream:
        return await trio.open_tcp_stream(self.host, self.port)

    async def _session(self) -> bool:
        """One connection attempt and, if it authenticates, its whole life."""
        cfg = self.config
        ok = False
        try:
            with trio.fail_after(cfg.connect_timeout_s):
                stream = CorkedStream(await self._dialer())
        except (OSError, trio.TooSlowError) as exc:
            log.debug("event=connect_failed peer=%s error=%r", self.peer, exc)
            return False
        settings = DialSettings(
            route=PEER_ROUTE,
            handshake_timeout_s=cfg.handshake_timeout_s,
            close_timeout_s=cfg.close_timeout_s,
            final_close_code=CLOSE_GOING_AWAY,
        )
        try:
            async with authenticated(
                stream, self.identity, self.peer, self._peer_key, settings, self.host
            ) as ws:
                ok = True
                await self._serve(ws, stream)
        except* Refused as group:
            for exc in leaves(group):
                self._warn_once(f"event=refused_by_peer peer={self.peer} reason={exc.reason}")
        except* HandshakeFailed as group:
            for exc in leaves(group):
                if exc.reason == HANDSHAKE_TIMEOUT:  # slow or stalled: a liveness issue
                    self._warn_once(f"event=handshake_timeout peer={self.peer}")
                else:  # the listener failed to prove it is the peer, or broke the protocol
                    self._faults.invalid(self.peer, exc.reason, detail=exc.detail)
        except* CONNECTION_ERRORS as group:
            log.debug("event=link_error peer=%s error=%r", self.peer, group.exceptions[0])
        return ok

    async def _serve(self, ws: trio_websocket.WebSocketConnection, stream: CorkedStream) -> None:
        send_channel, receive_channel = trio.open_memory_channel[bytes](self.config.outbox_size)
        self._ws, self._outbox = ws, send_channel
        self.connects += 1
        self._last_warning = ""
        self._up.set()
        log.info("event=link_up peer=%s", self.peer)
        self._notify(True)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, ws, stream, receive_channel, nursery.cancel_scope)
                nursery.start_soon(self._keepalive, ws, stream, nursery.cancel_scope)
                nursery.start_soon(self._drain, ws, nursery.cancel_scope)
        finally:
            self._ws, self._outbox = None, None
            self._up = trio.Event()
            send_channel.close()
            receive_channel.close()
            log.info("event=link_down peer=%s", self.peer)
            self._notify(False)

    async def _writer(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: CorkedStream,
        outbox: trio.MemoryReceiveChannel[bytes],
        scope: trio.CancelScope,
    ) -> None:
        """The link's only data writer: takes every queued frame, one socket write per batch."""
        try:
            while True:
                data = await outbox.receive()
                stream.cork()
                try:
                    await self._write(ws, data)
                    while stream.buffered < BATCH_BYTES:
                        try:
                            data = outbox.receive_nowait()
                        except trio.WouldBlock:
                            break
                        await self._write(ws, data)
                finally:
                    await stream.flush()
        except (trio.EndOfChannel, *CONNECTION_ERRORS) as exc:
            log.debug("event=writer_stopped peer=%s error=%r", self.peer, exc)
        finally:
            scope.cancel()

    async def _write(self, ws: trio_websocket.WebSocketConnection, data: bytes) -> None:
        if len(data) <= self.config.max_frame:
            await ws.send_message(data)
            return
        for part in split(data, self.config.max_frame):
            await ws.send_message(part)

    async def _keepalive(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        scope: trio.CancelScope,
    ) -> None:
        cfg = self.config
        try:
            while True:
                await trio.sleep(cfg.keepalive_interval_s)
                rtt = await self._ping(ws, cfg.keepalive_timeout_s)
                if rtt is None:
                    log.warning(
                        "event=keepalive_timeout peer=%s timeout_s=%s",
                        self.peer,
                        cfg.keepalive_timeout_s,
                    )
                    await close_stream_quietly(stream)  # abort: no close handshake with the dead
                    return
        except LinkDown:
            pass
        finally:
            scope.cancel()

    async def _drain(self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope) -> None:
        """Read what the listener sends after the handshake: nothing is expected.

        Reading keeps trio-websocket's message queue empty, so control frames (pongs, the
        close handshake) are never stuck behind data (trio-websocket #82).
        """
        try:
            await ws.get_message()
        except CONNECTION_ERRORS:
            return
        else:
            self._faults.invalid(self.peer, UNEXPECTED_FRAME)
            await close_quietly(
                ws, CLOSE_UNEXPECTED_FRAME, UNEXPECTED_FRAME, self.config.close_timeout_s
            )
        finally:
            scope.cancel()

    async def _ping(self, ws: trio_websocket.WebSocketConnection, timeout: float) -> float | None:
        """RTT in seconds, None on timeout; LinkDown if the connection is closed."""
        self._ping_ids += 1
        payload = self._ping_ids.to_bytes(8, "big")
        began = trio.current_time()
        with trio.move_on_after(timeout):
            try:
                await ws.ping(payload)
            except CONNECTION_ERRORS:
                raise LinkDown(f"link to {self.peer} was lost") from None
            self.last_rtt = trio.current_time() - began
            return self.last_rtt
        return None

    def _warn_once(self, line: str) -> None:
        """Log a repeated connection problem at WARNING once, then at DEBUG until it changes."""
        log.log(logging.DEBUG if line == self._last_warning else logging.WARNING, "%s", line)
        self._last_warning = line

    def _notify(self, up: bool) -> None:
        if self._on_state is not None:
            self._on_state(self.peer, up)
