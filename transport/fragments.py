"""Messages larger than one frame, on the peer route: split on send, joined on receipt.

A peer message above the frame limit (a state transfer's snapshot, a ``NewView`` carrying
many certificates) leaves as several frames, each within the limit, each starting with
``FRAGMENT`` (0xC1, the one byte msgpack never uses, so no message of the codec starts
with it) and a flag, ``MORE`` or ``LAST``, then a slice of the message. The receiving
side joins the slices of one message up to ``max_message`` bytes (more is refused as
``oversized`` and closes the link) and hands the whole message to the decoder; frames
that are not fragments pass through at once, so a heartbeat may overtake a long message.
A sender writes the fragments of one message in order and one message at a time.
"""

from __future__ import annotations

from transport.frames import BAD_FRAGMENT, OVERSIZED, FrameRejected

FRAGMENT = 0xC1
MORE = 0
LAST = 1
HEADER = 2


def split(data: bytes, max_frame: int) -> list[bytes]:
    """``data`` as one frame if it fits in ``max_frame``, else as fragments that do."""
    if len(data) <= max_frame:
        return [data]
    room = max_frame - HEADER
    if room <= 0:
        raise ValueError(f"frame limit {max_frame} leaves no room for a fragment")
    view = memoryview(data)
    parts = []
    for start in range(0, len(data), room):
        flag = LAST if start + room >= len(data) else MORE
        parts.append(bytes((FRAGMENT, flag)) + view[start : start + room])
    return parts


class Reassembler:
    """Joins the fragments arriving on one connection (one message at a time)."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def pending(self) -> int:
        """Bytes held for a message not yet complete."""
        return self._size

    def feed(self, frame: bytes) -> bytes | None:
        """The complete message this frame ends (the frame itself if it is not a
        fragment), or None while a message is still incomplete. Raises FrameRejected."""
        if not frame or frame[0] != FRAGMENT:
            return frame
        if len(frame) < HEADER or frame[1] not in (MORE, LAST):
            raise FrameRejected(BAD_FRAGMENT, "fragment without a valid flag")
        self._size += len(frame) - HEADER
        if self._size > self.max_message:
            size, self._size, self._parts = self._size, 0, []
            raise FrameRejected(OVERSIZED, f"message of {size}+ bytes > {self.max_message}")
        self._parts.append(frame[HEADER:])
        if frame[1] == MORE:
            return None
        data = b"".join(self._parts)
        self._parts, self._size = [], 0
        return data
