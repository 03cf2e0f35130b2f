"""The authentication handshake as a pure, sans-I/O state machine (no sockets, no clock).

Four binary messages follow the WebSocket upgrade (C = connecting side, L = listener):

    C -> L  hello      [b"hello", version, route, C name, L name, C nonce]
    L -> C  challenge  [b"challenge", version, L name, L nonce, L signature]
    C -> L  proof      [b"proof", version, C signature]
    L -> C  welcome    [b"welcome", version]

Each side signs the same transcript -- a domain tag, the version, its own role, the route,
both names and both fresh 32-byte nonces -- so a signature proves possession of the key
*for this connection only*: it cannot be replayed on another connection (the other
side's nonce differs), reflected back (the role differs), or moved between routes
(peer vs client). The listener also remembers recently seen connector nonces and refuses
a hello that reuses one (``replayed``); that is detection only, the listener's fresh nonce
is what makes replay useless. Messages are msgpack lists; anything malformed raises
HandshakeFailed with a reason from ``transport.frames``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import attrs
import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from transport.errors import HandshakeFailed
from transport.frames import (
    BAD_HANDSHAKE,
    BAD_SIGNATURE,
    BAD_VERSION,
    PROTOCOL_VERSION,
    REPLAYED,
    UNKNOWN_PRINCIPAL,
)
from transport.keys import SIGNATURE_BYTES, Identity, KeyRing, check_name, load_public_key, verify

NONCE_BYTES = 32
DOMAIN = b"bft-node transport handshake"
ROLE_CONNECTOR = b"connector"
ROLE_LISTENER = b"listener"

HELLO = b"hello"
CHALLENGE = b"challenge"
PROOF = b"proof"
WELCOME = b"welcome"


def new_nonce() -> bytes:
    """A fresh random challenge from the OS CSPRNG."""
    return os.urandom(NONCE_BYTES)


def transcript(
    role: bytes,
    route: str,
    connector: str,
    listener: str,
    connector_nonce: bytes,
    listener_nonce: bytes,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """The bytes a side signs: every field length-prefixed, so no two inputs collide."""
    fields = (
        DOMAIN,
        version.to_bytes(2, "big"),
        role,
        route.encode(),
        connector.encode(),
        listener.encode(),
        connector_nonce,
        listener_nonce,
    )
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


@attrs.frozen
class Hello:
    route: str
    connector: str
    listener: str
    nonce: bytes


@attrs.frozen
class Challenge:
    listener: str
    nonce: bytes
    signature: bytes


@attrs.frozen
class Proof:
    signature: bytes


def encode_hello(msg: Hello) -> bytes:
    return _pack([HELLO, PROTOCOL_VERSION, msg.route, msg.connector, msg.listener, msg.nonce])


def encode_challenge(msg: Challenge) -> bytes:
    return _pack([CHALLENGE, PROTOCOL_VERSION, msg.listener, msg.nonce, msg.signature])


def encode_proof(msg: Proof) -> bytes:
    return _pack([PROOF, PROTOCOL_VERSION, msg.signature])


def encode_welcome() -> bytes:
    return _pack([WELCOME, PROTOCOL_VERSION])


def decode_hello(data: bytes) -> Hello:
    route, connector, listener, nonce = _unpack(data, HELLO, (str, str, str, bytes))
    return Hello(route, _name(connector), _name(listener), _sized(nonce, NONCE_BYTES))


def decode_challenge(data: bytes) -> Challenge:
    listener, nonce, sig = _unpack(data, CHALLENGE, (str, bytes, bytes))
    return Challenge(_name(listener), _sized(nonce, NONCE_BYTES), _sized(sig, SIGNATURE_BYTES))


def decode_proof(data: bytes) -> Proof:
    (sig,) = _unpack(data, PROOF, (bytes,))
    return Proof(_sized(sig, SIGNATURE_BYTES))


def decode_welcome(data: bytes) -> None:
    _unpack(data, WELCOME, ())


class NonceCache:
    """The most recent ``capacity`` connector nonces a listener has seen."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def check_and_add(self, nonce: bytes) -> bool:
        """Record ``nonce``; True if it was new, False if it was seen before."""
        if nonce in self._seen:
            return False
        self._seen[nonce] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


class ConnectorHandshake:
    """The connecting side: proves ``identity`` and checks the listener's identity."""

    def __init__(
        self,
        identity: Identity,
        route: str,
        listener: str,
        listener_key: Ed25519PublicKey | bytes,
        nonce: bytes | None = None,
    ) -> None:
        self.identity = identity
        self.route = route
        self.listener = check_name(listener)
        self._listener_key = (
            listener_key
            if isinstance(listener_key, Ed25519PublicKey)
            else load_public_key(listener_key)
        )
        self.nonce = nonce if nonce is not None else new_nonce()
        self._listener_nonce: bytes | None = None

    def hello(self) -> bytes:
        return encode_hello(Hello(self.route, self.identity.name, self.listener, self.nonce))

    def on_challenge(self, data: bytes) -> bytes:
        """Check the listener's proof of identity; return our proof to send."""
        msg = decode_challenge(data)
        if msg.listener != self.listener:
            raise HandshakeFailed(
                BAD_HANDSHAKE, f"expected {self.listener!r}, got {msg.listener!r}"
            )
        signed = self._transcript(ROLE_LISTENER, msg.nonce)
        if not verify(self._listener_key, msg.signature, signed):
            raise HandshakeFailed(BAD_SIGNATURE, f"listener {self.listener!r}")
        self._listener_nonce = msg.nonce
        proof = self.identity.sign(self._transcript(ROLE_CONNECTOR, msg.nonce))
        return encode_proof(Proof(proof))

    def on_welcome(self, data: bytes) -> None:
        if self._listener_nonce is None:
            raise HandshakeFailed(BAD_HANDSHAKE, "welcome before challenge")
        decode_welcome(data)

    def _transcript(self, role: bytes, listener_nonce: bytes) -> bytes:
        return transcript(
            role, self.route, self.identity.name, self.listener, self.nonce, listener_nonce
        )


class ListenerHandshake:
    """The listening side: proves ``identity`` and authenticates the connector."""

    def __init__(
        self,
        identity: Identity,
        route: str,
        known: KeyRing,
        nonce: bytes | None = None,
        seen: NonceCache | None = None,
    ) -> None:
        self.identity = identity
        self.route = route
        self._known = known
        self.nonce = nonce if nonce is not None else new_nonce()
        self._seen = seen
        self._hello: Hello | None = None
        self.principal: str | None = None

    @property
    def claimed(self) -> str | None:
        """The name the connector claims (unauthenticated until ``principal`` is set)."""
        return self._hello.connector if self._hello else None

    def on_hello(self, data: bytes) -> bytes:
        """Check the hello; return the challenge (carrying our own signature) to send."""
        msg = decode_hello(data)
        if msg.route != self.route:
            raise HandshakeFailed(BAD_HANDSHAKE, f"hello for route {msg.route!r} on {self.route}")
        if msg.listener != self.identity.name:
            raise HandshakeFailed(BAD_HANDSHAKE, f"hello addressed to {msg.listener!r}")
        if msg.connector not in self._known:
            raise HandshakeFailed(UNKNOWN_PRINCIPAL, repr(msg.connector))
        if self._seen is not None and not self._seen.check_and_add(msg.nonce):
            raise HandshakeFailed(REPLAYED, f"nonce reused by {msg.connector!r}")
        self._hello = msg
        signature = self.identity.sign(self._transcript(ROLE_LISTENER))
        return encode_challenge(Challenge(self.identity.name, self.nonce, signature))

    def on_proof(self, data: bytes) -> bytes:
        """Authenticate the connector; return the welcome to send."""
        if self._hello is None:
            raise HandshakeFailed(BAD_HANDSHAKE, "proof before hello")
        msg = decode_proof(data)
        name = self._hello.connector
        if not self._known.verify(name, msg.signature, self._transcript(ROLE_CONNECTOR)):
            raise HandshakeFailed(BAD_SIGNATURE, f"connector {name!r}")
        self.principal = name
        return encode_welcome()

    def _transcript(self, role: bytes) -> bytes:
        assert self._hello is not None
        return transcript(
            role,
            self.route,
            self._hello.connector,
            self.identity.name,
            self._hello.nonce,
            self.nonce,
        )


def _pack(fields: list[Any]) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def _unpack(data: bytes, tag: bytes, types: tuple[type, ...]) -> list[Any]:
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as exc:  # msgpack raises several types on garbage
        raise HandshakeFailed(BAD_HANDSHAKE, f"undecodable: {type(exc).__name__}") from exc
    if not isinstance(fields, list) or len(fields) < 2 or fields[0] != tag:
        raise HandshakeFailed(BAD_HANDSHAKE, f"expected {tag.decode()}")
    if type(fields[1]) is not int:
        raise HandshakeFailed(BAD_HANDSHAKE, "version is not an integer")
    if fields[1] != PROTOCOL_VERSION:
        raise HandshakeFailed(BAD_VERSION, f"version {fields[1]}")
    body = fields[2:]
    if len(body) != len(types) or not all(
        isinstance(v, t) for v, t in zip(body, types, strict=True)
    ):
        raise HandshakeFailed(BAD_HANDSHAKE, f"bad {tag.decode()} fields")
    return body


def _sized(value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise HandshakeFailed(BAD_HANDSHAKE, f"field of {len(value)} bytes, expected {size}")
    return value


def _name(value: str) -> str:
    try:
        return check_name(value)
    except ValueError as exc:
        raise HandshakeFailed(BAD_HANDSHAKE, "bad name") from exc
