"""Messages: round trips through the codec, canonical signing bytes, cached encodings."""

from __future__ import annotations

import hashlib

import attrs
import msgpack
import pytest

from node.protocol import codec
from node.protocol.crypto import sign_message
from node.protocol.messages import (
    NULL_DIGEST,
    Checkpoint,
    Commit,
    Heartbeat,
    HeartbeatAck,
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
    batch_digest,
)
from tests.consensus.core_helpers import CLIENT, make_request, replica_signer

D = bytes(range(32))


def _signed(msg, i=0):
    return sign_message(msg, replica_signer(i))


def sample_messages() -> list:
    req = make_request("s1", 7, b"op")
    batch = (req, make_request("s2", 1, b""))
    pp = _signed(PrePrepare(2, 5, batch_digest(batch), batch, 2), 2)
    prepares = tuple(_signed(Prepare(2, 5, pp.digest, i), i) for i in (0, 1))
    cps = tuple(_signed(Checkpoint(10, D, i), i) for i in (0, 1, 2))
    vc = _signed(ViewChange(3, 10, cps, (PreparedCert(pp, prepares),), 1), 1)
    nv = _signed(NewView(3, (vc,), (pp,), 3), 3)
    return [
        req,
        sign_message(ReadRequest("client/s1", 8, b"get"), CLIENT),
        ReadBatch((sign_message(ReadRequest("client/s2", 2, b"get"), CLIENT),)),
        pp,
        prepares[0],
        _signed(Commit(2, 5, pp.digest, 1), 1),
        Reply(2, 7, "client/s1", 1, b"result"),
        cps[0],
        vc,
        nv,
        StateRequest(10, 1),
        StateResponse(10, b"snapshot", cps, 2),
        Refused("client/s1", 7, 0, "quorum_unavailable"),
        Status(2, 5, 99, 96),
        Heartbeat(3, 2**40),
        HeartbeatAck(0, 1),
        _signed(PrePrepare(0, 1, NULL_DIGEST, (), 0)),
        RequestBatch(batch),
        ReplyBatch((Reply(2, 7, "client/s1", 1, b"r"), Reply(2, 1, "client/s2", 1, b""))),
    ]


def test_every_tag_has_a_sample() -> None:
    assert {type(m) for m in sample_messages()} == {spec.cls for spec in codec.TAGS.values()}


@pytest.mark.parametrize("msg", sample_messages(), ids=lambda m: type(m).__name__)
def test_round_trip(msg) -> None:
    data = codec.encode(msg)
    back = codec.decode(data)
    assert back == msg
    assert type(back) is type(msg)
    assert codec.encode(back) == data  # one canonical encoding
    assert codec.signing_bytes(back) == codec.signing_bytes(msg)


def test_envelope_is_version_tag_fields() -> None:
    msg = StateRequest(4, 2)
    assert msgpack.unpackb(codec.encode(msg)) == [codec.VERSION, 9, 4, 2]


def test_signing_bytes_exclude_signature_and_digest_is_sha256() -> None:
    p = Prepare(1, 2, D, 3, b"\x00" * 64)
    q = attrs.evolve(p, signature=b"\x01" * 64)
    assert codec.signing_bytes(p) == codec.signing_bytes(q)
    assert codec.encode(p) != codec.encode(q)
    assert msgpack.unpackb(codec.signing_bytes(p)) == [codec.VERSION, 3, 1, 2, D, 3]
    assert codec.digest(p) == hashlib.sha256(codec.signing_bytes(p)).digest()
    # any field change changes the signing bytes
    for change in ({"view": 2}, {"seq": 3}, {"digest": bytes(32)}, {"sender": 0}):
        assert codec.signing_bytes(attrs.evolve(p, **change)) != codec.signing_bytes(p)


def test_pre_prepare_signature_covers_digest_not_batch() -> None:
    req = make_request("s", 1, b"x")
    pp = PrePrepare(0, 1, batch_digest((req,)), (req,), 0)
    assert codec.signing_bytes(pp) == codec.signing_bytes(attrs.evolve(pp, batch=()))
    assert codec.signing_bytes(pp) != codec.signing_bytes(attrs.evolve(pp, digest=NULL_DIGEST))


def test_batch_digest_binds_order_content_and_signatures() -> None:
    a, b = make_request("a", 1, b"x"), make_request("b", 1, b"y")
    assert batch_digest((a, b)) != batch_digest((b, a))
    assert batch_digest((a,)) != batch_digest((a, b))
    forged = attrs.evolve(a, signature=b"\x00" * 64)
    assert batch_digest((forged,)) != batch_digest((a,))
    assert batch_digest(()) == NULL_DIGEST
    assert len(NULL_DIGEST) == 32


def test_encodings_are_cached_on_the_message() -> None:
    req = make_request("s", 1, b"x")
    assert req.wire is req.wire
    assert req.payload is req.payload
    assert req.payload_digest == hashlib.sha256(req.payload).digest()
    assert codec.encode(req) is req.wire


def test_cached_fields_do_not_affect_equality() -> None:
    a = make_request("s", 1, b"x")
    b = codec.decode(codec.encode(a))
    _ = a.wire, a.payload_digest
    assert a == b and hash(a) == hash(b)


def test_request_principal_and_key() -> None:
    req = Request("alice/42/x", 3, b"")
    assert req.principal == "alice"
    assert req.key == ("alice/42/x", 3)


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(TypeError):
        codec.encode(PreparedCert(None, ()))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        codec.encode("hello")  # type: ignore[arg-type]


@pytest.mark.parametrize("msg", sample_messages(), ids=lambda m: type(m).__name__)
def test_signing_bytes_are_the_frame_without_the_signature(msg) -> None:
    frame = msgpack.unpackb(codec.encode(msg))
    expected = frame[:-1] if hasattr(msg, "signature") else frame
    if isinstance(msg, PrePrepare):
        expected = [*frame[:5], frame[6]]  # the batch is bound by the digest instead
    if isinstance(msg, Request | ReadRequest | Commit):
        expected = frame[:-2]  # neither the signature nor the authenticator
    assert msgpack.unpackb(codec.signing_bytes_uncached(msg)) == expected


@pytest.mark.parametrize("msg", sample_messages(), ids=lambda m: type(m).__name__)
def test_the_fast_signing_paths_match_the_field_spec(msg) -> None:
    generic = codec.signing_fields_generic(msg)
    if isinstance(msg, PrePrepare):
        del generic[3]  # the batch: bound through the digest instead
    tag = codec._BY_CLASS[type(msg)][0]
    assert codec.signing_bytes_uncached(msg) == msgpack.packb([codec.VERSION, tag, *generic])
