"""Request authenticators: shared MAC keys, and how a backup checks requests it finds in a
pre-prepare (its own tag first, the Ed25519 signature only when the tag does not match)."""

from __future__ import annotations

import hashlib
import os

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.consensus.events import MessageReceived, Rejected
from node.protocol.crypto import (
    MAC_LEN,
    Signer,
    client_mac_keys,
    montgomery_from_edwards,
    request_authenticator,
    sign_message,
    sign_request,
)
from node.protocol.messages import Prepare, PrePrepare, Request, batch_digest
from tests.consensus.core_helpers import (
    CLIENT,
    config,
    make_core,
    replica_keys,
    replica_signer,
    seed,
)

CFG = config()
KEYS = client_mac_keys(CLIENT, "client", list(replica_keys(4).values()))


def req(ts: int, op: bytes = b"op", keys: list[bytes | None] = KEYS) -> Request:
    return sign_request(Request(f"client/s{ts}", ts, op), CLIENT, keys)


def offer(batch: tuple[Request, ...], backup: int = 1) -> tuple[object, list[object]]:
    core = make_core(CFG, backup)
    pp = sign_message(PrePrepare(0, 1, batch_digest(batch), batch, 0), replica_signer(0))
    return core, core.handle(MessageReceived(0, pp))


def prepared(actions: list[object]) -> bool:
    return any(type(getattr(a, "msg", None)) is Prepare for a in actions)


def test_both_ends_derive_the_same_key_and_only_for_their_pair() -> None:
    for _ in range(5):
        client, replica = Signer(os.urandom(32)), Signer(os.urandom(32))
        key = client.mac_key(replica.public_key, "alice", 2)
        assert key is not None and len(key) == 32
        assert replica.mac_key(client.public_key, "alice", 2) == key
        assert replica.mac_key(client.public_key, "alice", 3) != key
        assert replica.mac_key(client.public_key, "bob", 2) != key
        assert Signer(os.urandom(32)).mac_key(client.public_key, "alice", 2) != key


def test_the_montgomery_map_matches_x25519_of_the_same_seed() -> None:
    for i in range(10):
        s = seed(f"m{i}")
        x = X25519PrivateKey.from_private_bytes(hashlib.sha512(s).digest()[:32])
        assert montgomery_from_edwards(Signer(s).public_key) == x.public_key().public_bytes_raw()


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        bytes(31),
        (1).to_bytes(32, "little"),  # y = 1: the neutral point, no Montgomery image
        (2**255 - 19).to_bytes(32, "little"),  # y = p: not a field element
    ],
)
def test_unusable_public_keys_give_no_key(bad: bytes) -> None:
    assert montgomery_from_edwards(bad) is None
    assert CLIENT.mac_key(bad, "client", 0) is None


def test_a_missing_key_gets_a_zero_tag() -> None:
    tags = request_authenticator([None, KEYS[1]], bytes(32))
    assert tags[0] == bytes(MAC_LEN) and tags[1] != bytes(MAC_LEN)


def test_a_backup_accepts_on_its_tag_without_verifying_a_signature() -> None:
    batch = (req(1), req(2))
    core, actions = offer(batch)
    assert prepared(actions)
    assert core.auth_counts == {"mac": 2, "signature": 0}
    assert core.verifier.misses == 1  # the pre-prepare's own signature, no request's


def test_a_valid_tag_is_proof_enough_even_with_a_garbled_signature() -> None:
    # only the client holds the key it shares with backup 1: the tag proves the request
    good = req(1)
    batch = (attrs.evolve(good, signature=bytes(64), auth=good.auth),)
    core, actions = offer(batch)
    assert prepared(actions) and core.auth_counts["mac"] == 1


def test_a_wrong_tag_falls_back_to_the_signature() -> None:
    good = req(1)
    auth = list(good.auth)
    auth[1] = bytes(MAC_LEN)
    for variant in (tuple(auth), (), good.auth[:3], good.auth + (bytes(MAC_LEN),)):
        core, actions = offer((attrs.evolve(good, auth=variant),))
        assert prepared(actions), variant
        assert core.auth_counts == {"mac": 0, "signature": 1}


def test_tags_made_with_another_clients_keys_do_not_count() -> None:
    other = Signer(seed("someone-else"))
    keys = client_mac_keys(other, "client", list(replica_keys(4).values()))
    core, actions = offer((req(1, keys=keys),))
    assert prepared(actions) and core.auth_counts == {"mac": 0, "signature": 1}


def test_an_altered_operation_fails_both_checks() -> None:
    good = req(1)
    forged = attrs.evolve(good, operation=b"altered", auth=good.auth)
    core, actions = offer((forged,))
    assert not prepared(actions)
    assert Rejected(0, "bad_signature") in actions


def test_unknown_principals_are_not_remembered() -> None:
    stranger = Signer(seed("mallory"))
    keys = client_mac_keys(stranger, "mallory", list(replica_keys(4).values()))
    forged = sign_request(Request("mallory/x", 1, b"op"), stranger, keys)
    core, actions = offer((forged,))
    assert Rejected(0, "bad_signature") in actions
    assert "mallory" not in core._mac_keys


def test_the_authenticator_is_outside_the_digest_and_equality() -> None:
    a, b = req(1), attrs.evolve(req(1), auth=())
    assert a == b and batch_digest((a,)) == batch_digest((b,))
    assert a.payload == b.payload and a.wire != b.wire
