"""The one canonical byte encoding of every message, and a strict decoder.

A frame is the msgpack array ``[version, type_tag, *fields]``. Nested messages (the batch
of a pre-prepare, the proofs and certificates of a view change, ...) are plain field lists
without an envelope. ``signing_bytes(msg)`` is the frame without the trailing signature
field; ``digest(msg)`` is its SHA-256. Both, and ``encode``, are cached on the message.

``decode`` trusts nothing: every field is type-, length- and range-checked and anything
else raises ``DecodeError(reason)`` with ``reason`` one of ``malformed`` (not a msgpack
array envelope), ``bad_version``, ``unknown_type``, ``bad_shape`` (wrong field count,
type, length or range). It never raises anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from node.protocol.messages import (
    Checkpoint,
    Commit,
    CommittedEntry,
    Encoding,
    Heartbeat,
    HeartbeatAck,
    Message,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    ReadBatch,
    ReadRequest,
    Refused,
    Reply,
    ReplyBatch,
    Request,
    RequestBatch,
    StateRequest,
    StateResponse,
    Status,
    ViewChange,
)
from node.protocol.strict import NotMsgpack, unpack

#: 2: requests carry an authenticator (MAC vector) after the signature
#: 3: state requests name what the asker has executed; status messages
#: 4: commits carry an authenticator (MAC vector) after the signature
VERSION = 4

MAX_INT = 2**63 - 1
MAX_REPLICAS = 1024
MAX_SESSION_LEN = 256
MAX_OPERATION = 1 << 20
MAX_RESULT = 1 << 20
MAX_SNAPSHOT = 1 << 30
MAX_BATCH = 4096
MAX_CERTS = 1 << 16
MAX_REASON_LEN = 128
DIGEST_LEN = 32
SIGNATURE_LEN = 64
MAC_LEN = 16
KEY_LEN = 32

DECODE_REASONS = ("malformed", "unknown_type", "bad_shape", "bad_version")


class DecodeError(ValueError):
    """Raised by ``decode``; ``reason`` is one of ``DECODE_REASONS``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _BadShape(Exception):
    pass


# --- field kinds: check a decoded value, turn a value into its wire form -----------------


class _Kind:
    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def to_wire(self, value: Any) -> Any:
        return value


class _Int(_Kind):
    def __init__(self, maximum: int) -> None:
        self.maximum = maximum

    def check(self, value: Any) -> int:
        if type(value) is not int or not 0 <= value <= self.maximum:
            raise _BadShape(f"int out of range: {value!r:.40}")
        return value


class _Bytes(_Kind):
    def __init__(self, min_len: int, max_len: int) -> None:
        self.min_len, self.max_len = min_len, max_len

    def check(self, value: Any) -> bytes:
        if type(value) is not bytes or not self.min_len <= len(value) <= self.max_len:
            raise _BadShape("bad bytes field")
        return value


class _Str(_Kind):
    def __init__(self, min_len: int, max_len: int) -> None:
        self.min_len, self.max_len = min_len, max_len

    def check(self, value: Any) -> str:
        if type(value) is not str or not self.min_len <= len(value) <= self.max_len:
            raise _BadShape("bad str field")
        return value


UNSIGNED_FIELDS = ("signature", "auth")


class _Struct(_Kind):
    """A message's field list (nested, without an envelope)."""

    def __init__(self, cls: type, fields: Sequence[tuple[str, _Kind]]) -> None:
        self.cls = cls
        self.names = [name for name, _ in fields]
        self.kinds = [kind for _, kind in fields]
        #: fields outside what a signature covers: the signature and a request's
        #: authenticator
        self.unsigned = [i for i, name in enumerate(self.names) if name in UNSIGNED_FIELDS]

    def to_wire(self, value: Any) -> list[Any]:
        return [
            kind.to_wire(getattr(value, name))
            for name, kind in zip(self.names, self.kinds, strict=True)
        ]

    def check(self, value: Any) -> Any:
        if type(value) is not list or len(value) != len(self.kinds):
            raise _BadShape(f"{self.cls.__name__}: wrong field count")
        return self.cls(*[kind.check(item) for kind, item in zip(self.kinds, value, strict=True)])


class _ListOf(_Kind):
    def __init__(self, item: _Kind, max_len: int) -> None:
        self.item, self.max_len = item, max_len

    def to_wire(self, value: Any) -> list[Any]:
        return [self.item.to_wire(v) for v in value]

    def check(self, value: Any) -> tuple[Any, ...]:
        if type(value) is not list or len(value) > self.max_len:
            raise _BadShape("bad list")
        return tuple(self.item.check(v) for v in value)


class _Bool(_Kind):
    def check(self, value: Any) -> bool:
        if type(value) is not bool:
            raise _BadShape("bad bool field")
        return value


U64 = _Int(MAX_INT)
BOOL = _Bool()
SENDER = _Int(MAX_REPLICAS - 1)
DIGEST = _Bytes(DIGEST_LEN, DIGEST_LEN)
SIGNATURE = _Bytes(SIGNATURE_LEN, SIGNATURE_LEN)
SESSION = _Str(1, MAX_SESSION_LEN)

_REQUEST_FIELDS = [
    ("client", SESSION),
    ("timestamp", U64),
    ("operation", _Bytes(0, MAX_OPERATION)),
    ("signature", SIGNATURE),
    ("auth", _ListOf(_Bytes(MAC_LEN, MAC_LEN), MAX_REPLICAS)),
]
REQUEST = _Struct(Request, _REQUEST_FIELDS)
READ_REQUEST = _Struct(ReadRequest, _REQUEST_FIELDS)
PRE_PREPARE = _Struct(
    PrePrepare,
    [
        ("view", U64),
        ("seq", U64),
        ("digest", DIGEST),
        ("batch", _ListOf(REQUEST, MAX_BATCH)),
        ("sender", SENDER),
        ("signature", SIGNATURE),
    ],
)
_VOTE_FIELDS = [
    ("view", U64),
    ("seq", U64),
    ("digest", DIGEST),
    ("sender", SENDER),
    ("signature", SIGNATURE),
]
PREPARE = _Struct(Prepare, _VOTE_FIELDS)
COMMIT = _Struct(Commit, [*_VOTE_FIELDS, ("auth", _ListOf(_Bytes(MAC_LEN, MAC_LEN), MAX_REPLICAS))])
REPLY = _Struct(
    Reply,
    [
        ("view", U64),
        ("timestamp", U64),
        ("client", SESSION),
        ("replica", SENDER),
        ("result", _Bytes(0, MAX_RESULT)),
        ("tentative", BOOL),
    ],
)
CHECKPOINT = _Struct(
    Checkpoint,
    [("seq", U64), ("digest", DIGEST), ("sender", SENDER), ("signature", SIGNATURE)],
)
PROOF = _ListOf(CHECKPOINT, MAX_REPLICAS)
PREPARED_CERT = _Struct(
    PreparedCert,
    [("pre_prepare", PRE_PREPARE), ("prepares", _ListOf(PREPARE, MAX_REPLICAS))],
)
VIEW_CHANGE = _Struct(
    ViewChange,
    [
        ("new_view", U64),
        ("stable_seq", U64),
        ("checkpoint_proof", PROOF),
        ("prepared", _ListOf(PREPARED_CERT, MAX_CERTS)),
        ("sender", SENDER),
        ("signature", SIGNATURE),
    ],
)
NEW_VIEW = _Struct(
    NewView,
    [
        ("view", U64),
        ("view_changes", _ListOf(VIEW_CHANGE, MAX_REPLICAS)),
        ("pre_prepares", _ListOf(PRE_PREPARE, MAX_CERTS)),
        ("sender", SENDER),
        ("signature", SIGNATURE),
    ],
)
STATE_REQUEST = _Struct(StateRequest, [("after", U64), ("sender", SENDER)])
COMMITTED_ENTRY = _Struct(
    CommittedEntry,
    [("pre_prepare", PRE_PREPARE), ("commits", _ListOf(COMMIT, MAX_REPLICAS))],
)
STATE_RESPONSE = _Struct(
    StateResponse,
    [
        ("seq", U64),
        ("snapshot", _Bytes(0, MAX_SNAPSHOT)),
        ("proof", PROOF),
        ("sender", SENDER),
        ("entries", _ListOf(COMMITTED_ENTRY, MAX_CERTS)),
    ],
)
REFUSED = _Struct(
    Refused,
    [
        ("client", SESSION),
        ("timestamp", U64),
        ("replica", SENDER),
        ("reason", _Str(1, MAX_REASON_LEN)),
    ],
)
STATUS = _Struct(
    Status,
    [("sender", SENDER), ("view", U64), ("last_executed", U64), ("stable_seq", U64)],
)
HEARTBEAT = _Struct(Heartbeat, [("sender", SENDER), ("nonce", U64)])
HEARTBEAT_ACK = _Struct(HeartbeatAck, [("sender", SENDER), ("nonce", U64)])

REQUEST_BATCH = _Struct(RequestBatch, [("requests", _ListOf(REQUEST, MAX_BATCH))])
REPLY_BATCH = _Struct(ReplyBatch, [("replies", _ListOf(REPLY, MAX_BATCH))])
READ_BATCH = _Struct(ReadBatch, [("reads", _ListOf(READ_REQUEST, MAX_BATCH))])

#: type tag -> field spec; tags are part of the wire format and never reused.
TAGS: dict[int, _Struct] = {
    1: REQUEST,
    2: PRE_PREPARE,
    3: PREPARE,
    4: COMMIT,
    5: REPLY,
    6: CHECKPOINT,
    7: VIEW_CHANGE,
    8: NEW_VIEW,
    9: STATE_REQUEST,
    10: STATE_RESPONSE,
    11: REFUSED,
    12: HEARTBEAT,
    13: HEARTBEAT_ACK,
    14: REQUEST_BATCH,
    15: REPLY_BATCH,
    16: STATUS,
    17: READ_REQUEST,
    18: READ_BATCH,
}
_BY_CLASS: dict[type, tuple[int, _Struct]] = {spec.cls: (tag, spec) for tag, spec in TAGS.items()}


def _spec(msg: Any) -> tuple[int, _Struct]:
    try:
        return _BY_CLASS[type(msg)]
    except KeyError:
        raise TypeError(f"not an encodable message: {type(msg).__name__}") from None


def encode_uncached(msg: Message) -> bytes:
    tag, spec = _spec(msg)
    return msgpack.packb([VERSION, tag, *spec.to_wire(msg)])


def signing_fields_generic(msg: Message) -> list[Any]:
    """The fields a signature covers, from the field spec (the reference for the fast
    paths of ``signing_bytes_uncached``; a pre-prepare's batch is the exception, bound
    through its digest)."""
    _, spec = _spec(msg)
    fields = spec.to_wire(msg)
    for index in reversed(spec.unsigned):
        del fields[index]
    return fields


def signing_bytes_uncached(msg: Message) -> bytes:
    tag, spec = _spec(msg)
    kind = type(msg)
    # Fast paths for the hot types (the same fields as signing_fields_generic; a test
    # compares them).
    if kind is Request or kind is ReadRequest:
        fields = [msg.client, msg.timestamp, msg.operation]
    elif kind is Prepare or kind is Commit or kind is PrePrepare:
        # A pre-prepare's batch is bound through the digest, not the signature.
        fields = [msg.view, msg.seq, msg.digest, msg.sender]
    elif kind is Checkpoint:
        fields = [msg.seq, msg.digest, msg.sender]
    else:
        fields = signing_fields_generic(msg)
    return msgpack.packb([VERSION, tag, *fields])


def encode(msg: Message) -> bytes:
    """The canonical frame of ``msg`` (cached on the message)."""
    _spec(msg)
    return msg.wire


def signing_bytes(msg: Message) -> bytes:
    """The canonical bytes the signature of ``msg`` covers (cached on the message)."""
    _spec(msg)
    return msg.payload


def digest(msg: Message) -> bytes:
    """SHA-256 of ``signing_bytes(msg)`` (cached on the message)."""
    _spec(msg)
    return msg.payload_digest


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Parse one frame; raise ``DecodeError`` on anything but a well-formed message."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("malformed", "not bytes")
    try:
        obj = unpack(data)
    except NotMsgpack as exc:
        raise DecodeError("malformed", exc.cause) from None
    if type(obj) is not list or len(obj) < 2:
        raise DecodeError("malformed", "envelope is not [version, tag, ...]")
    version, tag = obj[0], obj[1]
    if type(version) is not int:
        raise DecodeError("malformed", "version is not an int")
    if version != VERSION:
        raise DecodeError("bad_version", str(version))
    if type(tag) is not int or tag not in TAGS:
        raise DecodeError("unknown_type", f"{tag!r:.40}")
    try:
        return TAGS[tag].check(obj[2:])
    except _BadShape as exc:
        raise DecodeError("bad_shape", str(exc)) from None


def decoder_for(*allowed: type) -> Callable[[bytes], Message]:
    """A ``decode`` that also rejects (as ``unknown_type``) messages not in ``allowed``."""

    def _decode(data: bytes) -> Message:
        msg = decode(data)
        if not isinstance(msg, allowed):
            raise DecodeError("unknown_type", type(msg).__name__)
        return msg

    return _decode


Encoding.wire = staticmethod(encode_uncached)
Encoding.payload = staticmethod(signing_bytes_uncached)
