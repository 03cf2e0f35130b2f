"""Which member a TLS certificate names: ``replica-I`` for replica I, ``client-NAME`` for
client principal NAME (DNS subject alternative names; ``node/certs.py`` writes them).
The listener checks the name against the member the Ed25519 handshake authenticated."""

from __future__ import annotations

import trio

from transport._ws import WatchedStream

TLS_NAME_MISMATCH = "tls_name_mismatch"


def member_name(route_is_peer: bool, principal: str) -> str:
    """The name a member's certificate must carry: ``replica-I`` or ``client-NAME``."""
    return f"replica-{principal}" if route_is_peer else f"client-{principal}"


def peer_names(stream: trio.abc.Stream) -> frozenset[str] | None:
    """The DNS names of the verified certificate of a TLS stream's far end; None if
    `stream` is not TLS (then nothing is checked)."""
    while isinstance(stream, WatchedStream):
        stream = stream.inner
    if not isinstance(stream, trio.SSLStream):
        return None
    cert = stream.getpeercert() or {}
    return frozenset(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def names_member(stream: trio.abc.Stream, route_is_peer: bool, principal: str) -> bool:
    """True unless `stream` is TLS and its certificate does not name `principal`."""
    names = peer_names(stream)
    return names is None or member_name(route_is_peer, principal) in names
