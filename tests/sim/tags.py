"""The simulation's own check of commit authenticators (``node/consensus/vote_auth.py``),
derived without the code under test: X25519 by ``cryptography`` from each replica's seed
(libsodium's Ed25519-to-Curve25519 map is SHA-512 of the seed, clamped), HKDF-SHA256
with the commit salt and the pair's ids, and keyed BLAKE2b of the commit's payload
digest. The spec accepts a commit delivered to replica r as its sender's when r's tag in
it is valid, as a correct replica does, or when its signature verifies."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT = b"bft-node/commit-mac/v1"
TAG_LEN = 16


class TagKeys:
    def __init__(self, seeds: dict[int, bytes]) -> None:
        self._x = {
            r: X25519PrivateKey.from_private_bytes(hashlib.sha512(s).digest()[:32])
            for r, s in seeds.items()
        }
        self._keys: dict[tuple[int, int], bytes] = {}

    def key(self, a: int, b: int) -> bytes | None:
        low, high = sorted((a, b))
        if low == high or low not in self._x or high not in self._x:
            return None
        cached = self._keys.get((low, high))
        if cached is None:
            shared = self._x[low].exchange(self._x[high].public_key())
            info = b"%d\x00%d" % (low, high)
            cached = HKDF(algorithm=SHA256(), length=32, salt=SALT, info=info).derive(shared)
            self._keys[(low, high)] = cached
        return cached

    def valid_for(self, receiver: int, commit: Any) -> bool:
        """The tag for ``receiver`` in ``commit`` is its sender's."""
        auth = getattr(commit, "auth", ())
        key = self.key(receiver, commit.sender)
        if key is None or receiver >= len(auth):
            return False
        digest = hashlib.sha256(commit.payload).digest()
        tag = hashlib.blake2b(digest, key=key, digest_size=TAG_LEN).digest()
        return hmac.compare_digest(tag, auth[receiver])
