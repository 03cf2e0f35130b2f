"""What a client may send, checked before anything leaves: keys and values as ``str``
(sent as UTF-8) or ``bytes``; a key of at most ``MAX_KEY`` bytes; a request that fits one
client frame (``[transport] max_client_frame``, 64 KiB by default), which bounds a value
(or a cas's expected and new value together) at ``max_value(cfg)`` bytes, a little under
the frame (the store itself would take up to ``MAX_VALUE``)."""

from __future__ import annotations

from typing import Any

from node.app.kv import MAX_KEY, MAX_VALUE
from node.client.errors import InvalidRequest
from node.config import ClusterConfig
from node.protocol.framing import request_size_bound
from node.protocol.messages import Request

__all__ = ["MAX_KEY", "MAX_VALUE", "as_bytes", "check_fits", "max_value"]

#: msgpack list and string headers around an operation's parts (generous)
_OP_FIXED = 32
#: a session name as `Session` makes them: the principal, "/", 12 hex digits
_SESSION_SUFFIX = 13
_SIGNATURE = 64
_MAC = 32


def as_bytes(value: Any, what: str, limit: int) -> bytes:
    """`value` as bytes (a str as UTF-8); InvalidRequest if it is neither or too long."""
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, bytearray | memoryview):
        value = bytes(value)
    elif not isinstance(value, bytes):
        raise InvalidRequest(f"{what} must be str or bytes, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidRequest(f"{what} is {len(value)} bytes; the limit is {limit}")
    return value


def _envelope(cfg: ClusterConfig, principal: str) -> int:
    """An upper bound of a request's frame size without its operation."""
    client = "x" * (len(principal) + _SESSION_SUFFIX)
    empty = Request(client, 1 << 62, b"", bytes(_SIGNATURE), (bytes(_MAC),) * cfg.n)
    return request_size_bound(empty) + 16  # the frame envelope


def _room(cfg: ClusterConfig, principal: str, key_len: int) -> int:
    frame = cfg.section("transport")["max_client_frame"]
    return frame - _envelope(cfg, principal) - _OP_FIXED - key_len


def max_value(cfg: ClusterConfig, principal: str = "client") -> int:
    """The most value bytes one request may carry to this cluster, whatever its key."""
    return max(0, min(MAX_VALUE, _room(cfg, principal, MAX_KEY)))


def check_fits(cfg: ClusterConfig, principal: str, key: bytes, values: int) -> None:
    """InvalidRequest unless an operation on `key` carrying `values` value bytes in all
    (a cas carries two) fits one request frame."""
    room = _room(cfg, principal, len(key))
    if values > room:
        raise InvalidRequest(
            f"{values} value bytes do not fit one request: the room with this key is "
            f"{room} bytes, {max_value(cfg, principal)} whatever the key "
            "([transport] max_client_frame sets it)"
        )
