"""Exceptions raised by the transport to its callers.

Everything the transport raises on purpose derives from ``TransportError`` so callers can
catch the whole family (``except* TransportError`` where exception groups may arrive).
"""

from __future__ import annotations


class TransportError(Exception):
    """Base class of every error the transport raises on purpose."""


class LinkDown(TransportError):
    """The link is not connected (or was lost while the call waited); nothing was sent."""


class FrameTooLarge(TransportError, ValueError):
    """The caller tried to send a frame larger than the route allows."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class HandshakeFailed(TransportError):
    """The authentication handshake failed.

    ``reason`` is a short snake_case word (see ``transport.frames``); ``code`` is the
    WebSocket close code the failing side sends, or the one the remote closed with.
    """

    def __init__(self, reason: str, detail: str = "", *, code: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.code = code


class Refused(HandshakeFailed):
    """The remote side refused our handshake (closed with ``code`` during it)."""
