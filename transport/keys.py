"""Ed25519 identities: who we are (name + private key) and whom we know (name -> public key).

Private keys are given as a ``cryptography`` Ed25519PrivateKey or its 32-byte raw seed;
public keys as 32 raw bytes. Bad key material is a configuration error (ValueError).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_BYTES = 32
SIGNATURE_BYTES = 64
MAX_NAME_CHARS = 64


def check_name(name: object) -> str:
    """Return ``name`` if it is a usable endpoint name, else raise ValueError."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise ValueError(f"endpoint name must be 1..{MAX_NAME_CHARS} characters")
    if not name.isprintable() or name != name.strip():
        raise ValueError("endpoint name must be printable without surrounding spaces")
    return name


def load_private_key(key: Ed25519PrivateKey | bytes) -> Ed25519PrivateKey:
    """Accept a private key object or its 32-byte raw seed."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, bytes | bytearray) and len(key) == KEY_BYTES:
        return Ed25519PrivateKey.from_private_bytes(bytes(key))
    raise ValueError("private key must be an Ed25519PrivateKey or a 32-byte seed")


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """Parse a raw 32-byte Ed25519 public key."""
    if not isinstance(raw, bytes | bytearray) or len(raw) != KEY_BYTES:
        raise ValueError("public key must be 32 raw bytes")
    return Ed25519PublicKey.from_public_bytes(bytes(raw))


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a public key (of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@attrs.frozen
class Identity:
    """Our own endpoint: the name we claim and the key that proves it."""

    name: str = attrs.field(validator=lambda _i, _a, v: check_name(v))
    private_key: Ed25519PrivateKey = attrs.field(converter=load_private_key, repr=False)

    @property
    def public_key(self) -> bytes:
        return raw_public_key(self.private_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


class KeyRing:
    """Known endpoints of one role (replicas, or client principals): name -> public key."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = {check_name(name): load_public_key(raw) for name, raw in keys.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, name: str, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` over ``data`` is valid for the known key of ``name``."""
        key = self._keys.get(name)
        return key is not None and verify(key, signature, data)


def verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """Ed25519 verification as a bool (never raises on bad input)."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
