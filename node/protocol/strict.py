"""Strict msgpack decoding, the one way this project reads msgpack it did not just write.

Strings must be valid UTF-8, arrays come back as lists, and map keys must be str or
bytes (msgpack's own guard against hash-flooding with odd key types). Whatever msgpack
raises (it has many exception types, for truncation, extra data, bad types, limits) is
one `NotMsgpack`, a `ValueError`, so every caller handles bad input in one place.
"""

from __future__ import annotations

from typing import Any

import msgpack


class NotMsgpack(ValueError):
    """`data` is not one well-formed msgpack object; `cause` names msgpack's error."""

    def __init__(self, what: str, cause: str) -> None:
        super().__init__(f"{what} is not msgpack" if what else "not msgpack")
        self.cause = cause


def unpack(data: bytes | bytearray | memoryview, what: str = "") -> Any:
    """Decode one msgpack object strictly, or raise `NotMsgpack`."""
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types; all mean "not msgpack"
        raise NotMsgpack(what, type(exc).__name__) from None
