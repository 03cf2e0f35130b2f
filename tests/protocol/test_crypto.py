"""Ed25519 signing/verification, key loading, and the verified-signature cache."""

from __future__ import annotations

import pytest

from node.protocol.crypto import (
    BadKeyError,
    Signer,
    VerifyCache,
    key_from_hex,
    public_key_from_hex,
    sign_message,
    verify,
)
from node.protocol.messages import Prepare
from tests.consensus.core_helpers import make_request, seed


def test_sign_and_verify() -> None:
    signer = Signer(seed("a"))
    sig = signer.sign(b"hello")
    assert len(sig) == 64 and len(signer.public_key) == 32
    assert verify(signer.public_key, b"hello", sig)
    assert not verify(signer.public_key, b"hellO", sig)
    assert not verify(Signer(seed("b")).public_key, b"hello", sig)
    assert not verify(signer.public_key, b"hello", sig[:63])
    assert not verify(b"short", b"hello", sig)


def test_signer_is_deterministic_from_its_seed() -> None:
    assert Signer(seed("a")).public_key == Signer(seed("a")).public_key
    assert Signer(seed("a")).sign(b"m") == Signer(seed("a")).sign(b"m")


def test_key_loading_from_hex() -> None:
    raw = seed("k")
    assert key_from_hex(raw.hex() + "\n") == raw
    signer = Signer.from_hex(raw.hex() + "\n")
    assert public_key_from_hex(signer.public_key.hex()) == signer.public_key
    for bad in ("zz" * 32, "ab" * 31, "", "ab" * 33):
        with pytest.raises(BadKeyError):
            key_from_hex(bad)
    with pytest.raises(BadKeyError):
        Signer(b"\x00" * 31)


def test_sign_message_covers_the_payload() -> None:
    signer = Signer(seed("r"))
    msg = sign_message(Prepare(1, 2, bytes(32), 0), signer)
    assert verify(signer.public_key, msg.payload, msg.signature)


def test_cache_verifies_each_signed_message_once() -> None:
    cache = VerifyCache(max_entries=10)
    req = make_request("s", 1, b"op")
    key = Signer(seed("client")).public_key
    assert cache.verify_message(key, req)
    assert cache.verify_message(key, req)
    assert (cache.hits, cache.misses) == (1, 1)
    # a structurally equal copy (e.g. the same request inside a pre-prepare) hits too
    copy = make_request("s", 1, b"op")
    assert copy is not req and cache.verify_message(key, copy)
    assert cache.hits == 2


def test_cache_remembers_bad_signatures_and_is_bounded() -> None:
    cache = VerifyCache(max_entries=3)
    signer = Signer(seed("x"))
    assert not cache.verify(signer.public_key, b"m", bytes(64))
    assert not cache.verify(signer.public_key, b"m", bytes(64))
    assert cache.misses == 1
    for i in range(10):
        data = b"m%d" % i
        assert cache.verify(signer.public_key, data, signer.sign(data))
    assert len(cache) == 3
    assert not cache.verify(b"\x01" * 32, b"m", bytes(64))  # not a valid point: False
