"""TLS under the WebSocket links: secrecy and integrity on the wire (``ssl`` + trio).

`TlsNetwork` is a `Network` (``network.py``) that runs TLS 1.3, mutual, over TCP: the
dialer wraps each connection in ``trio.SSLStream`` and checks that the server's
certificate, from the cluster CA, names the member it meant to reach (``server_hostname``
is that member's name, e.g. ``replica-2``); the listener requires a client certificate
from the same CA and, once the Ed25519 handshake has authenticated a member, checks that
the certificate names that member too (``Listener`` calls `peer_names`). The Ed25519
handshake stays as it is: it binds the connection to a member's key; TLS adds secrecy.

A connection that fails TLS is refused with a counted reason (``on_invalid`` of the
listener, i.e. ``bft_invalid_messages_total{reason}``) and one log line: `TLS_UNKNOWN_CA`,
`TLS_EXPIRED` (expired or not yet valid), `TLS_NO_CERTIFICATE`, `TLS_NOT_TLS` (plain
bytes such as a ws:// upgrade), `TLS_FAILED` (anything else), and after the handshake
`TLS_NAME_MISMATCH`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path

import trio

from transport._ws import remote_host
from transport.listener import Listener
from transport.tls_names import TLS_NAME_MISMATCH

log = logging.getLogger("transport")

TLS_UNKNOWN_CA = "tls_unknown_ca"
TLS_EXPIRED = "tls_expired"
TLS_NO_CERTIFICATE = "tls_no_certificate"
TLS_NOT_TLS = "tls_not_tls"
TLS_FAILED = "tls_failed"

Dialer = Callable[[], Awaitable[trio.abc.Stream]]


class TlsRefused(OSError):
    """The TLS handshake with a peer failed; ``reason`` is one of the ``TLS_*`` codes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _context(purpose: ssl.Purpose, ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def server_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Serving: TLS 1.3 only, a client certificate from `ca` required."""
    return _context(ssl.Purpose.CLIENT_AUTH, ca, cert, key)


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Dialing: TLS 1.3 only, the server's certificate from `ca` and naming the member
    dialed; presents `cert` for the server's check."""
    ctx = _context(ssl.Purpose.SERVER_AUTH, ca, cert, key)
    ctx.check_hostname = True
    return ctx


def classify(exc: BaseException) -> str:
    """The ``TLS_*`` reason of a failed handshake."""
    text = str(exc.__cause__ or exc).lower()
    if "expired" in text or "not yet valid" in text:
        return TLS_EXPIRED
    if "unknown ca" in text or "unable to get local issuer" in text or "self-signed" in text:
        return TLS_UNKNOWN_CA
    if "peer did not return a certificate" in text or "certificate required" in text:
        return TLS_NO_CERTIFICATE
    if "http request" in text or "wrong version number" in text or "unsupported protocol" in text:
        return TLS_NOT_TLS
    if "hostname mismatch" in text or "ip address mismatch" in text:
        return TLS_NAME_MISMATCH
    return TLS_FAILED


class TlsNetwork:
    """TCP with mutual TLS 1.3; `names` maps a dialed (host, port) to the member name the
    server's certificate must carry."""

    def __init__(
        self,
        server: ssl.SSLContext | None,
        client: ssl.SSLContext,
        names: Mapping[tuple[str, int], str],
        handshake_timeout_s: float = 5.0,
    ) -> None:
        self.server = server
        self.client = client
        self.names = dict(names)
        self.handshake_timeout_s = handshake_timeout_s

    def dialer(self, src: str, host: str, port: int) -> Dialer:
        return partial(self._dial, host, port)

    async def _dial(self, host: str, port: int) -> trio.abc.Stream:
        name = self.names.get((host, port), host)
        raw = await trio.open_tcp_stream(host, port)
        tls = trio.SSLStream(raw, self.client, server_hostname=name, https_compatible=True)
        try:
            with trio.fail_after(self.handshake_timeout_s):
                await tls.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            await trio.aclose_forcefully(raw)
            reason = classify(exc) if isinstance(exc, trio.BrokenResourceError) else TLS_FAILED
            log.debug("event=tls_dial_failed peer=%s reason=%s error=%s", name, reason, exc)
            raise TlsRefused(reason, str(exc.__cause__ or exc)) from exc
        return tls

    async def serve(
        self, listener: Listener, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.server is None:
            raise ValueError("this TlsNetwork has no server context: it only dials")
        await listener.serve(task_status=task_status, accept=partial(self._accept, listener))

    async def _accept(self, listener: Listener, raw: trio.abc.Stream) -> None:
        assert self.server is not None
        tls = trio.SSLStream(raw, self.server, server_side=True, https_compatible=True)
        reason = None
        with trio.move_on_after(self.handshake_timeout_s) as timer:
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as exc:
                reason, detail = classify(exc), str(exc.__cause__ or exc)
        if timer.cancelled_caught:
            reason, detail = TLS_FAILED, "handshake timed out"
        if reason is not None:
            host, addr = remote_host(raw)
            listener.faults.invalid(host, reason, remote=addr, detail=detail[:200])
            await trio.aclose_forcefully(raw)
            return
        await listener.handle_stream(tls)
