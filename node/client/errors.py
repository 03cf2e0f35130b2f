"""What a client call can come to besides a result, as exception types callers can tell
apart: no f+1 matching replies in time, or the replicas refusing the request (and why)."""

from __future__ import annotations

__all__ = ["ClientError", "QuorumUnavailable", "Refused"]


class ClientError(Exception):
    """A request could not be completed (no f+1 matching replies in time)."""


class Refused(ClientError):
    """f+1 replicas refused the request at once; ``reason`` says why (``overloaded``:
    more requests wait than the cluster can order in time; back off and retry)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QuorumUnavailable(Refused):
    """f+1 replicas said at once that they cannot reach a quorum."""
