"""Frame rules shared by every route: routes, size limits, fault reasons, close codes.

After the handshake a link carries binary WebSocket messages only, one frame per message,
with no transport envelope (the message codec carries its own version), except that on
the peer route a message above the frame limit travels as fragments (``fragments.py``).
A frame is rejected, and the link closed, when it is text, larger than the route's limit,
a malformed fragment, or refused by the injected decoder. The reasons below are the words reported to ``on_invalid`` and
used as the ``reason`` label of ``bft_invalid_messages_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

#: 2: peer messages above the frame limit travel as fragments
PROTOCOL_VERSION = 2

# Routes on a replica's single listener.
PEER_ROUTE = "/peer"
CLIENT_ROUTE = "/client"

KIB = 1024
MIB = 1024 * KIB


@attrs.frozen
class Limits:
    """Largest frame accepted, per route and during the handshake, and the largest peer
    message joined from fragments."""

    peer_max_frame: int = 16 * MIB
    client_max_frame: int = 64 * KIB
    handshake_max_frame: int = 4 * KIB
    peer_max_message: int = 512 * MIB

    def for_route(self, route: str) -> int:
        return self.peer_max_frame if route == PEER_ROUTE else self.client_max_frame


# Reasons reported to on_invalid(source, reason).
OVERSIZED = "oversized"
TEXT_FRAME = "text_frame"
UNKNOWN_PRINCIPAL = "unknown_principal"
BAD_SIGNATURE = "bad_signature"
REPLAYED = "replayed"
HANDSHAKE_TIMEOUT = "handshake_timeout"
BAD_HANDSHAKE = "bad_handshake"
BAD_VERSION = "bad_version"
BAD_UPGRADE = "bad_upgrade"
UNKNOWN_ROUTE = "unknown_route"
UNEXPECTED_FRAME = "unexpected_frame"
MALFORMED = "malformed"  # a decoder error without a .reason of its own
BAD_FRAGMENT = "bad_fragment"  # a fragment frame without a valid flag

# WebSocket close codes the transport sends.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TEXT_FRAME = 1003  # "unsupported data"
CLOSE_OVERSIZED = 1009  # "message too big"; trio-websocket uses it for its own limit too
CLOSE_BAD_HANDSHAKE = 4000
CLOSE_UNKNOWN_PRINCIPAL = 4001
CLOSE_BAD_SIGNATURE = 4002
CLOSE_REPLAYED = 4003
CLOSE_HANDSHAKE_TIMEOUT = 4004
CLOSE_INVALID_FRAME = 4005
CLOSE_SUPERSEDED = 4006  # a newer authenticated connection from the same peer replaced it
CLOSE_UNEXPECTED_FRAME = 4007
CLOSE_SLOW_CONSUMER = 4008  # a client that does not read its replies
CLOSE_WRONG_CERTIFICATE = 4009  # the TLS certificate names another member

CLOSE_CODE_FOR_REASON: dict[str, int] = {
    OVERSIZED: CLOSE_OVERSIZED,
    TEXT_FRAME: CLOSE_TEXT_FRAME,
    UNKNOWN_PRINCIPAL: CLOSE_UNKNOWN_PRINCIPAL,
    BAD_SIGNATURE: CLOSE_BAD_SIGNATURE,
    REPLAYED: CLOSE_REPLAYED,
    HANDSHAKE_TIMEOUT: CLOSE_HANDSHAKE_TIMEOUT,
    BAD_HANDSHAKE: CLOSE_BAD_HANDSHAKE,
    BAD_VERSION: CLOSE_BAD_HANDSHAKE,
    UNEXPECTED_FRAME: CLOSE_UNEXPECTED_FRAME,
    BAD_FRAGMENT: CLOSE_INVALID_FRAME,
}
REASON_FOR_CLOSE_CODE: dict[int, str] = {
    CLOSE_OVERSIZED: OVERSIZED,
    CLOSE_TEXT_FRAME: TEXT_FRAME,
    CLOSE_UNKNOWN_PRINCIPAL: UNKNOWN_PRINCIPAL,
    CLOSE_BAD_SIGNATURE: BAD_SIGNATURE,
    CLOSE_REPLAYED: REPLAYED,
    CLOSE_HANDSHAKE_TIMEOUT: HANDSHAKE_TIMEOUT,
    CLOSE_BAD_HANDSHAKE: BAD_HANDSHAKE,
    CLOSE_UNEXPECTED_FRAME: UNEXPECTED_FRAME,
}


def close_code_for(reason: str) -> int:
    """The close code sent when refusing for ``reason`` (decoder reasons -> invalid frame)."""
    return CLOSE_CODE_FOR_REASON.get(reason, CLOSE_INVALID_FRAME)


class FrameRejected(Exception):
    """A received frame broke the route's rules; the link must be closed with ``code``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.code = close_code_for(reason)


def check_frame(message: bytes | str, limit: int) -> bytes:
    """Return ``message`` if it is a binary frame within ``limit``; raise FrameRejected."""
    if isinstance(message, str):
        raise FrameRejected(TEXT_FRAME, f"{len(message)} characters")
    if len(message) > limit:
        raise FrameRejected(OVERSIZED, f"{len(message)} > {limit} bytes")
    return message


Decoder = Callable[[bytes], Any]


def identity_decoder(data: bytes) -> bytes:
    """The default decoder: hands the raw frame on."""
    return data


def decode_frame(data: bytes, decoder: Decoder) -> Any:
    """Run the injected decoder; any exception becomes FrameRejected.

    The decoder signals bad input by raising an exception with a ``reason`` str attribute
    (e.g. the codec's DecodeError); any other exception counts as ``malformed`` so that no
    input, however odd, can escape as a crash.
    """
    try:
        return decoder(data)
    except Exception as exc:  # input validation boundary: every failure is a rejection
        reason = getattr(exc, "reason", None)
        if not isinstance(reason, str) or not reason:
            reason = MALFORMED
        raise FrameRejected(reason, type(exc).__name__) from exc
