"""Ed25519 signing and verification, with a verified-signature cache.

Signing and verifying go through libsodium (PyNaCl), faster here than
``cryptography``/OpenSSL (docs/performance.md has the figures), which stays for key
files and validation. Keys are raw 32-byte
values (hex in files and ``cluster.toml``). The core verifies each distinct signed message
once:
``VerifyCache`` remembers the verdict for ``(public key, payload digest, signature)``, which
makes a request seen directly and again inside a pre-prepare, or a prepare seen directly and
again inside a view-change certificate, cost one verification.

Request authenticators (PBFT's MAC vectors): a client and a replica share a key derived
by X25519 from their Ed25519 keys (``Signer.mac_key``: both keys converted to Curve25519
form by libsodium, then HKDF bound to both names), so nothing but the keys already in
``cluster.toml`` is needed. A client adds one 16-byte
keyed BLAKE2b tag per replica to each request (``request_authenticator``); a backup that
finds a request in a pre-prepare checks its own tag (about 1 µs) before falling back to
the Ed25519 signature. Only the client and that replica hold the key, so a
valid tag proves the client made the request exactly as a signature would to that replica.

Commit authenticators: a replica adds one tag per replica to each ``Commit`` it sends,
under the key it shares with that replica (``Signer.vote_key``, the same derivation with a
salt of its own). A receiver that finds its own tag valid counts the commit without
verifying its signature; the signature stays on the message for the one place a third
party needs it, the commit certificates of a state transfer (``consensus/transfer.py``).

Pure: no randomness (a ``Signer`` is built from a seed the caller supplies), no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from typing import Any, TypeVar

import attrs
import nacl.bindings as sodium
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LEN = 32
SIGNATURE_LEN = 64
MAC_LEN = 16
_MAC_SALT = b"bft-node/request-mac/v1"
_VOTE_SALT = b"bft-node/commit-mac/v1"
_SODIUM_ERRORS = (nacl.exceptions.CryptoError, ValueError, TypeError)

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
        seed = _check_raw(seed, "private seed")
        self.public_key, self._secret = sodium.crypto_sign_seed_keypair(seed)
        self._dh = sodium.crypto_sign_ed25519_sk_to_curve25519(self._secret)

    @classmethod
    def from_hex(cls, text: str) -> Signer:
        """From the content of a private key file (64 hex chars, newline allowed)."""
        return cls(key_from_hex(text, "private seed"))

    def sign(self, data: bytes) -> bytes:
        return sodium.crypto_sign(data, self._secret)[:SIGNATURE_LEN]

    def mac_key(self, peer_public_key: bytes, client: str, replica: int) -> bytes | None:
        """The key this signer shares with the holder of ``peer_public_key`` for the pair
        (client principal, replica id); the same on both sides. None if the peer's key is
        not a usable point (then requests fall back to signatures)."""
        info = b"%s\x00%d" % (client.encode(), replica)
        return self._shared_key(peer_public_key, _MAC_SALT, info)

    def vote_key(self, peer_public_key: bytes, me: int, peer: int) -> bytes | None:
        """The key replicas ``me`` and ``peer`` share for their commit authenticators
        (one key for the pair, both directions; a salt of its own, so it never equals a
        request key). None if the peer's key is not a usable point."""
        low, high = sorted((me, peer))
        return self._shared_key(peer_public_key, _VOTE_SALT, b"%d\x00%d" % (low, high))

    def _shared_key(self, peer_public_key: bytes, salt: bytes, info: bytes) -> bytes | None:
        u = montgomery_from_edwards(peer_public_key)
        if u is None:
            return None
        try:
            shared = sodium.crypto_scalarmult(self._dh, u)
        except _SODIUM_ERRORS:  # a small-order point: no shared secret
            return None
        return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(shared)

    def __repr__(self) -> str:
        return f"Signer(public_key={self.public_key.hex()[:16]}...)"


def montgomery_from_edwards(public_key: bytes) -> bytes | None:
    """The X25519 public value of an Ed25519 public key (libsodium's conversion), or
    None for a key that is not a valid point of the main subgroup's curve."""
    if not isinstance(public_key, bytes) or len(public_key) != KEY_LEN:
        return None
    try:
        return sodium.crypto_sign_ed25519_pk_to_curve25519(public_key)
    except _SODIUM_ERRORS:
        return None


def request_mac(key: bytes, payload_digest: bytes) -> bytes:
    """One authenticator entry: keyed BLAKE2b of a request's payload digest."""
    return hashlib.blake2b(payload_digest, key=key, digest_size=MAC_LEN).digest()


def request_authenticator(keys: list[bytes | None], payload_digest: bytes) -> tuple[bytes, ...]:
    """A client's MAC vector for a request, one entry per replica id (``keys[i]`` shared
    with replica i; a replica without a key gets a zero entry and checks the signature)."""
    zero = bytes(MAC_LEN)
    return tuple(zero if k is None else request_mac(k, payload_digest) for k in keys)


def mac_matches(key: bytes, payload_digest: bytes, tag: bytes) -> bool:
    """Constant-time check of one authenticator entry."""
    return hmac.compare_digest(request_mac(key, payload_digest), tag)


def _sodium_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        sodium.crypto_sign_open(signature + message, public_key)
    except _SODIUM_ERRORS:
        return False
    return True


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    Never raises: malformed keys or signatures are simply invalid.
    """
    if (
        not isinstance(public_key, bytes)
        or len(public_key) != KEY_LEN
        or not isinstance(signature, bytes)
        or len(signature) != SIGNATURE_LEN
        or not isinstance(message, bytes)
    ):
        return False
    return _sodium_verify(public_key, message, signature)


def sign_message(msg: M, signer: Signer) -> M:
    """Return ``msg`` with its ``signature`` field set over its canonical payload."""
    return attrs.evolve(msg, signature=signer.sign(msg.payload))  # type: ignore[misc,attr-defined]


def client_mac_keys(
    signer: Signer, principal: str, replica_keys: list[bytes]
) -> list[bytes | None]:
    """A client's MAC keys, one per replica id (``replica_keys[i]`` is replica i's key)."""
    return [signer.mac_key(pk, principal, i) for i, pk in enumerate(replica_keys)]


def sign_request(request: M, signer: Signer, mac_keys: list[bytes | None]) -> M:
    """A client's request, signed and with its authenticator for every replica."""
    digest = request.payload_digest  # type: ignore[attr-defined]
    return attrs.evolve(  # type: ignore[misc]
        request,
        signature=signer.sign(request.payload),  # type: ignore[attr-defined]
        auth=request_authenticator(mac_keys, digest),
    )


class VerifyCache:
    """Bounded LRU of verdicts for ``(public key, payload digest, signature)`` triples.

    Both valid and invalid verdicts are remembered, so a peer that repeats a bad signature
    costs one verification too.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._verdicts: OrderedDict[tuple[bytes, bytes, bytes], bool] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._verdicts)

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
        ok = verify(public_key, message, signature)
        verdicts[entry] = ok
        if len(verdicts) > self.max_entries:
            verdicts.popitem(last=False)
        return ok

    def verify_message(self, public_key: bytes, msg: Any) -> bool:
        """Verify a signed message's ``signature`` over its cached payload."""
        return self.verify(public_key, msg.payload, msg.signature, msg.payload_digest)
