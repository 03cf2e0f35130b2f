"""The handshake state machine alone: no sockets, no clock."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transport.helpers import IDS, PUB
from transport.errors import HandshakeFailed
from transport.frames import CLIENT_ROUTE, PEER_ROUTE, PROTOCOL_VERSION
from transport.handshake import (
    ROLE_CONNECTOR,
    ROLE_LISTENER,
    ConnectorHandshake,
    ListenerHandshake,
    NonceCache,
    decode_challenge,
    decode_hello,
    decode_proof,
    decode_welcome,
    transcript,
)
from transport.keys import Identity, KeyRing

PEERS = KeyRing({n: PUB[n] for n in ("1", "2", "3")})


def run(connector: ConnectorHandshake, listener: ListenerHandshake) -> None:
    challenge = listener.on_hello(connector.hello())
    welcome = listener.on_proof(connector.on_challenge(challenge))
    connector.on_welcome(welcome)


def pair(name: str = "1", key_of: str | None = None, seen: NonceCache | None = None):
    identity = Identity(name, IDS[key_of or name].private_key)
    connector = ConnectorHandshake(identity, PEER_ROUTE, "0", PUB["0"])
    listener = ListenerHandshake(IDS["0"], PEER_ROUTE, PEERS, seen=seen)
    return connector, listener


def reason_of(call, *args) -> str:
    with pytest.raises(HandshakeFailed) as info:
        call(*args)
    return info.value.reason


def test_mutual_success_names_the_principal():
    connector, listener = pair("1")
    run(connector, listener)
    assert listener.principal == "1"


def test_unknown_name_is_refused_at_hello():
    connector = ConnectorHandshake(IDS["mallory"], PEER_ROUTE, "0", PUB["0"])
    _, listener = pair()
    assert reason_of(listener.on_hello, connector.hello()) == "unknown_principal"
    assert listener.principal is None


def test_impostor_with_right_name_and_wrong_key_fails_signature():
    connector, listener = pair("1", key_of="mallory")
    challenge = listener.on_hello(connector.hello())
    proof = connector.on_challenge(challenge)
    assert reason_of(listener.on_proof, proof) == "bad_signature"
    assert listener.principal is None


def test_corrupted_signature_fails():
    connector, listener = pair("1")
    proof = bytearray(connector.on_challenge(listener.on_hello(connector.hello())))
    proof[-1] ^= 0x01
    assert reason_of(listener.on_proof, bytes(proof)) == "bad_signature"


def test_impostor_listener_is_detected_by_the_connector():
    connector = ConnectorHandshake(IDS["1"], PEER_ROUTE, "0", PUB["0"])
    fake = ListenerHandshake(Identity("0", IDS["mallory"].private_key), PEER_ROUTE, PEERS)
    assert reason_of(connector.on_challenge, fake.on_hello(connector.hello())) == "bad_signature"


def test_replayed_hello_is_detected_and_replayed_proof_fails():
    seen = NonceCache()
    connector, listener = pair("1", seen=seen)
    hello = connector.hello()
    proof = connector.on_challenge(listener.on_hello(hello))
    listener.on_proof(proof)
    # The same hello again on a new connection: the nonce was seen.
    assert (
        reason_of(ListenerHandshake(IDS["0"], PEER_ROUTE, PEERS, seen=seen).on_hello, hello)
        == "replayed"
    )
    # A fresh listener (e.g. after a restart) does not remember, but its own fresh nonce
    # makes the recorded proof worthless.
    again = ListenerHandshake(IDS["0"], PEER_ROUTE, PEERS, seen=NonceCache())
    again.on_hello(hello)
    assert reason_of(again.on_proof, proof) == "bad_signature"


def test_signatures_are_bound_to_role_route_names_and_both_nonces():
    base = (PEER_ROUTE, "1", "0", b"c" * 32, b"l" * 32)
    variants = [
        transcript(ROLE_LISTENER, *base),
        transcript(ROLE_CONNECTOR, CLIENT_ROUTE, *base[1:]),
        transcript(ROLE_CONNECTOR, PEER_ROUTE, "2", "0", b"c" * 32, b"l" * 32),
        transcript(ROLE_CONNECTOR, PEER_ROUTE, "1", "3", b"c" * 32, b"l" * 32),
        transcript(ROLE_CONNECTOR, PEER_ROUTE, "1", "0", b"C" * 32, b"l" * 32),
        transcript(ROLE_CONNECTOR, PEER_ROUTE, "1", "0", b"c" * 32, b"L" * 32),
        transcript(ROLE_CONNECTOR, *base, version=PROTOCOL_VERSION + 1),
    ]
    signed = transcript(ROLE_CONNECTOR, *base)
    assert len(set(variants) | {signed}) == len(variants) + 1
    # Length prefixes: moving bytes between adjacent names changes the transcript.
    assert transcript(ROLE_CONNECTOR, PEER_ROUTE, "12", "0", b"", b"") != transcript(
        ROLE_CONNECTOR, PEER_ROUTE, "1", "20", b"", b""
    )


def test_listener_signature_cannot_serve_as_connector_proof():
    connector, listener = pair("1")
    challenge = decode_challenge(listener.on_hello(connector.hello()))
    reflected = msgpack.packb([b"proof", PROTOCOL_VERSION, challenge.signature])
    assert reason_of(listener.on_proof, reflected) == "bad_signature"


def test_hello_for_another_route_or_listener_is_refused():
    listener = ListenerHandshake(IDS["0"], PEER_ROUTE, PEERS)
    other_route = ConnectorHandshake(IDS["1"], CLIENT_ROUTE, "0", PUB["0"]).hello()
    assert reason_of(listener.on_hello, other_route) == "bad_handshake"
    other_target = ConnectorHandshake(IDS["1"], PEER_ROUTE, "2", PUB["2"]).hello()
    assert reason_of(listener.on_hello, other_target) == "bad_handshake"


def test_wrong_version_and_malformed_messages():
    bad_version = msgpack.packb([b"hello", 99, PEER_ROUTE, "1", "0", b"n" * 32])
    assert reason_of(decode_hello, bad_version) == "bad_version"
    assert reason_of(decode_hello, b"\xc1garbage") == "bad_handshake"
    assert reason_of(decode_hello, msgpack.packb([b"proof", 1, b"s" * 64])) == "bad_handshake"
    v = PROTOCOL_VERSION
    short_nonce = msgpack.packb([b"hello", v, PEER_ROUTE, "1", "0", b"n" * 31])
    assert reason_of(decode_hello, short_nonce) == "bad_handshake"
    bad_name = msgpack.packb([b"hello", v, PEER_ROUTE, "x" * 65, "0", b"n" * 32])
    assert reason_of(decode_hello, bad_name) == "bad_handshake"
    assert reason_of(decode_proof, msgpack.packb([b"proof", v, "not bytes"])) == "bad_handshake"
    assert reason_of(decode_welcome, msgpack.packb([b"welcome", True])) == "bad_handshake"


def test_proof_before_hello_and_welcome_before_challenge():
    _, listener = pair()
    assert reason_of(listener.on_proof, msgpack.packb([b"proof", 1, b"s" * 64])) == "bad_handshake"
    connector, _ = pair()
    assert reason_of(connector.on_welcome, msgpack.packb([b"welcome", 1])) == "bad_handshake"


def test_nonce_cache_is_bounded():
    cache = NonceCache(capacity=2)
    assert cache.check_and_add(b"a") and cache.check_and_add(b"b")
    assert not cache.check_and_add(b"a")
    assert cache.check_and_add(b"c")  # evicts the oldest, "a"
    assert cache.check_and_add(b"a")  # so "a" is new again
    assert not cache.check_and_add(b"c")


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            msgpack.packb,
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**63), 2**64 - 1)
                | st.binary(max_size=40)
                | st.text(max_size=20),
                lambda inner: st.lists(inner, max_size=7),
                max_leaves=12,
            ),
        ),
    )
)
def test_any_input_fails_only_with_handshake_failed(data: bytes):
    connector, listener = pair()
    for step in (
        listener.on_hello,
        listener.on_proof,
        connector.on_challenge,
        connector.on_welcome,
    ):
        try:
            step(data)
        except HandshakeFailed as exc:
            assert exc.reason in {
                "bad_handshake",
                "bad_version",
                "unknown_principal",
                "bad_signature",
            }
