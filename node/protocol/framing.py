"""How client-link messages share WebSocket frames.

Every WebSocket message costs tens of microseconds of Python on each end (wsproto framing,
trio-websocket's reader task and channels), more than a KV operation itself. A client's
sessions share one connection per replica, so the requests its sessions issue together
and the replies one core round produces for them travel as one ``RequestBatch`` /
``ReplyBatch`` frame instead of one frame each. A lone message keeps its own frame type.

Frames stay under the link's frame limit: messages are grouped by an upper bound of their
encoded size (fields plus msgpack headers), never by encoding them twice, and at most
``MAX_BATCH`` to a frame (what the decoder accepts), whatever the limit is set to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.protocol.codec import MAX_BATCH
from node.protocol.messages import ReadBatch, ReadRequest, Reply, ReplyBatch, Request, RequestBatch

#: msgpack overhead of a batch frame's envelope and list header (generous)
_ENVELOPE = 16
#: per-message field headers and integers, on top of its variable-length fields
_REPLY_FIXED = 48
_REQUEST_FIXED = 96


def reply_size_bound(reply: Reply) -> int:
    return _REPLY_FIXED + len(reply.client) * 4 + len(reply.result)


def request_size_bound(request: Request | ReadRequest) -> int:
    return (
        _REQUEST_FIXED
        + len(request.client) * 4
        + len(request.operation)
        + len(request.signature)
        + 18 * len(request.auth)
    )


def _groups(msgs: Sequence[Any], bound: Any, limit: int) -> list[list[Any]]:
    groups: list[list[Any]] = []
    current: list[Any] = []
    size = _ENVELOPE
    for msg in msgs:
        need = bound(msg)
        if current and (size + need > limit or len(current) >= MAX_BATCH):
            groups.append(current)
            current, size = [], _ENVELOPE
        current.append(msg)
        size += need
    if current:
        groups.append(current)
    return groups


def _frames(
    msgs: Sequence[Any], bound: Any, batch: Any, limit: int
) -> list[tuple[bytes, list[Any]]]:
    if len(msgs) == 1:
        return [(msgs[0].wire, [msgs[0]])]
    return [
        (group[0].wire if len(group) == 1 else batch(tuple(group)).wire, group)
        for group in _groups(msgs, bound, limit)
    ]


def reply_frames(replies: Sequence[Reply], limit: int) -> list[bytes]:
    """The frames that carry ``replies`` in order (a lone or oversized one as itself)."""
    return [frame for frame, _ in _frames(replies, reply_size_bound, ReplyBatch, limit)]


def request_frames(
    requests: Sequence[Request | ReadRequest], limit: int
) -> list[tuple[bytes, list[Any]]]:
    """The frames that carry ``requests`` in order, each with the requests it carries:
    ``RequestBatch``es of ordered requests, ``ReadBatch``es of read-only ones (a list holds
    one kind)."""
    batch = ReadBatch if requests and type(requests[0]) is ReadRequest else RequestBatch
    return _frames(requests, request_size_bound, batch, limit)
