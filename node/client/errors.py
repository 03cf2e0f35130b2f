"""What a client call can come to besides a result, as exception types callers can tell
apart: no f+1 matching replies in time, the replicas refusing the request (and why), or a
request the client would not send (a key or value over the limits)."""

from __future__ import annotations

__all__ = ["ClientError", "InvalidRequest", "QuorumUnavailable", "Refused", "RequestTimeout"]


class ClientError(Exception):
    """A request could not be completed; the base of every error a client call raises."""


class RequestTimeout(ClientError):
    """No f+1 matching replies within the call's deadline. The operation may still take
    effect later (it may have reached the primary); a retry of a put is harmless, a retry
    of a cas may find its own earlier write."""


class Refused(ClientError):
    """f+1 replicas refused the request at once; ``reason`` says why (``overloaded``:
    more requests wait than the cluster can order in time; back off and retry)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QuorumUnavailable(Refused):
    """f+1 replicas said at once that they cannot reach a quorum."""


class InvalidRequest(ClientError, ValueError):
    """The client would not send this request: a key or value of the wrong type or over
    the limits (``node.client.limits``), or a cluster that answered it as malformed."""
