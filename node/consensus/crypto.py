"""Ed25519 signing and verification (via ``cryptography``), with a verified-signature cache.

Keys are raw 32-byte values (hex in files and ``cluster.toml``). Verifying costs about
100 µs and signing about 30 µs, so the core verifies each distinct signed message once:
``VerifyCache`` remembers the verdict for ``(public key, payload digest, signature)``, which
makes a request seen directly and again inside a pre-prepare, or a prepare seen directly and
again inside a view-change certificate, cost one verification.

Pure: no randomness (a ``Signer`` is built from a seed the caller supplies), no I/O.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, TypeVar

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_LEN = 32
SIGNATURE_LEN = 64

M = TypeVar("M")


class BadKeyError(ValueError):
    """A key given as bytes or hex has the wrong length or is not hex."""


def _check_raw(raw: bytes, what: str) -> bytes:
    if not isinstance(raw, bytes | bytearray) or len(raw) != KEY_LEN:
        raise BadKeyError(f"{what} must be {KEY_LEN} raw bytes")
    return bytes(raw)


def key_from_hex(text: str, what: str = "key") -> bytes:
    """Parse 64 hex characters (surrounding whitespace allowed) into 32 raw bytes."""
    try:
        raw = bytes.fromhex(text.strip())
    except (ValueError, AttributeError):
        raise BadKeyError(f"{what} is not hex") from None
    return _check_raw(raw, what)


def public_key_from_hex(text: str) -> bytes:
    """A public key from ``cluster.toml``; validated as a usable Ed25519 key."""
    raw = key_from_hex(text, "public key")
    load_public_key(raw)
    return raw


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """Raw 32 bytes -> a ``cryptography`` public key object (raises ``BadKeyError``)."""
    try:
        return Ed25519PublicKey.from_public_bytes(_check_raw(raw, "public key"))
    except ValueError as exc:
        raise BadKeyError(f"invalid public key: {exc}") from None


class Signer:
    """Signs with the Ed25519 key derived from a 32-byte private seed."""

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(_check_raw(seed, "private seed"))
        self.public_key: bytes = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def from_hex(cls, text: str) -> Signer:
        """From the content of a private key file (64 hex chars, newline allowed)."""
        return cls(key_from_hex(text, "private seed"))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"Signer(public_key={self.public_key.hex()[:16]}...)"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    Never raises: malformed keys or signatures are simply invalid.
    """
    if len(signature) != SIGNATURE_LEN:
        return False
    try:
        load_public_key(public_key).verify(signature, message)
    except (InvalidSignature, BadKeyError, ValueError, TypeError):
        return False
    return True


def sign_message(msg: M, signer: Signer) -> M:
    """Return ``msg`` with its ``signature`` field set over its canonical payload."""
    return attrs.evolve(msg, signature=signer.sign(msg.payload))  # type: ignore[misc,attr-defined]


class VerifyCache:
    """Bounded LRU of verdicts for ``(public key, payload digest, signature)`` triples.

    Both valid and invalid verdicts are remembered, so a peer that repeats a bad signature
    costs one verification too. Public key objects are cached as well.
    """

    def __init__(self, max_entries: int = 100_000, max_keys: int = 4096) -> None:
        self.max_entries = max_entries
        self.max_keys = max_keys
        self._verdicts: OrderedDict[tuple[bytes, bytes, bytes], bool] = OrderedDict()
        self._keys: OrderedDict[bytes, Ed25519PublicKey | None] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._verdicts)

    def _key(self, public_key: bytes) -> Ed25519PublicKey | None:
        keys = self._keys
        if public_key in keys:
            keys.move_to_end(public_key)
            return keys[public_key]
        try:
            obj: Ed25519PublicKey | None = load_public_key(public_key)
        except BadKeyError:
            obj = None
        keys[public_key] = obj
        if len(keys) > self.max_keys:
            keys.popitem(last=False)
        return obj

    def verify(
        self, public_key: bytes, message: bytes, signature: bytes, digest: bytes | None = None
    ) -> bool:
        """Like ``verify``; ``digest`` (SHA-256 of ``message``) saves rehashing if known."""
        if digest is None:
            digest = hashlib.sha256(message).digest()
        entry = (public_key, digest, signature)
        verdicts = self._verdicts
        cached = verdicts.get(entry)
        if cached is not None:
            verdicts.move_to_end(entry)
            self.hits += 1
            return cached
        self.misses += 1
        key = self._key(public_key)
        ok = False
        if key is not None and len(signature) == SIGNATURE_LEN:
            try:
                key.verify(signature, message)
                ok = True
            except InvalidSignature:
                ok = False
        verdicts[entry] = ok
        if len(verdicts) > self.max_entries:
            verdicts.popitem(last=False)
        return ok

    def verify_message(self, public_key: bytes, msg: Any) -> bool:
        """Verify a signed message's ``signature`` over its cached payload."""
        return self.verify(public_key, msg.payload, msg.signature, msg.payload_digest)
