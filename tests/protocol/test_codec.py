"""The strict decoder: every malformed frame is a DecodeError with a known reason."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.protocol import codec
from node.protocol.codec import DECODE_REASONS, DecodeError
from node.protocol.messages import Prepare, Request
from tests.consensus.core_helpers import make_request
from tests.protocol.test_messages import sample_messages

D = bytes(32)
SIG = bytes(64)
V = codec.VERSION


def frame(*items) -> bytes:
    return msgpack.packb(list(items))


def reason(data) -> str:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert info.value.reason in DECODE_REASONS
    return info.value.reason


def test_valid_minimal_frame() -> None:
    assert codec.decode(frame(V, 3, 0, 1, D, 2, SIG)) == Prepare(0, 1, D, 2, SIG)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", frame(V, 3, 0, 1, D, 2, SIG) + b"\x00", b"\xa3abc", frame(1)],
    ids=["empty", "reserved-byte", "truncated", "trailing", "not-a-list", "short-envelope"],
)
def test_malformed(data) -> None:
    assert reason(data) == "malformed"


def test_not_bytes_is_malformed() -> None:
    assert reason("text") == "malformed"  # type: ignore[arg-type]


def test_bad_version() -> None:
    assert reason(frame(V + 1, 3, 0, 1, D, 2, SIG)) == "bad_version"
    assert reason(frame(0, 3, 0, 1, D, 2, SIG)) == "bad_version"
    assert reason(frame(1, 3, 0, 1, D, 2, SIG)) == "bad_version"  # before authenticators
    assert reason(frame("1", 3, 0, 1, D, 2, SIG)) == "malformed"


@pytest.mark.parametrize("tag", [0, 19, 99, -1, "prepare", None, 2.0])
def test_unknown_type(tag) -> None:
    assert reason(frame(V, tag, 0, 1, D, 2, SIG)) == "unknown_type"


@pytest.mark.parametrize(
    "fields",
    [
        (0, 1, D, 2),  # missing signature
        (0, 1, D, 2, SIG, 0),  # extra field
        (-1, 1, D, 2, SIG),  # negative view
        (2**63, 1, D, 2, SIG),  # too large
        (True, 1, D, 2, SIG),  # bool is not an int
        (0.0, 1, D, 2, SIG),  # float
        (0, 1, D[:31], 2, SIG),  # short digest
        (0, 1, D + b"x", 2, SIG),  # long digest
        (0, 1, "x" * 32, 2, SIG),  # str instead of bytes
        (0, 1, D, 2, SIG[:63]),  # short signature
        (0, 1, D, 1024, SIG),  # sender out of range
        (0, 1, D, None, SIG),
        (0, 1, {"a": 1}, 2, SIG),
    ],
)
def test_bad_shape_prepare(fields) -> None:
    assert reason(frame(V, 3, *fields)) == "bad_shape"


def test_bad_shape_nested() -> None:
    req = [f"client/s{0}", 1, b"op", SIG, [bytes(16)] * 4]
    good = frame(V, 2, 0, 1, D, [req], 0, SIG)
    assert codec.decode(good).batch[0] == Request("client/s0", 1, b"op", SIG)
    assert codec.decode(good).batch[0].auth == (bytes(16),) * 4
    assert reason(frame(V, 2, 0, 1, D, [[*req[:4], [bytes(15)]]], 0, SIG)) == "bad_shape"
    assert reason(frame(V, 2, 0, 1, D, [[*req[:4], bytes(16)]], 0, SIG)) == "bad_shape"
    assert reason(frame(V, 2, 0, 1, D, [req[:4]], 0, SIG)) == "bad_shape"
    assert reason(frame(V, 2, 0, 1, D, [req[:3]], 0, SIG)) == "bad_shape"
    assert reason(frame(V, 2, 0, 1, D, req, 0, SIG)) == "bad_shape"
    assert reason(frame(V, 2, 0, 1, D, [["", 1, b"", SIG, []]], 0, SIG)) == "bad_shape"
    assert reason(frame(V, 2, 0, 1, D, [[b"client/x", 1, b"", SIG, []]], 0, SIG)) == "bad_shape"
    too_many = [req] * (codec.MAX_BATCH + 1)
    assert reason(frame(V, 2, 0, 1, D, too_many, 0, SIG)) == "bad_shape"
    # view change whose certificate is missing its prepares list
    pp = [0, 1, D, [], 0, SIG]
    assert reason(frame(V, 7, 1, 0, [], [[pp]], 1, SIG)) == "bad_shape"
    assert codec.decode(frame(V, 7, 1, 0, [], [[pp, []]], 1, SIG)).new_view == 1


def test_deep_nesting_is_malformed_or_bad_shape() -> None:
    data = b"\x91" * 100_000 + b"\x00"
    assert reason(data) in ("malformed", "bad_shape")


def test_ext_types_and_maps_are_rejected() -> None:
    assert reason(msgpack.packb([V, 3, 0, 1, msgpack.ExtType(1, D), 2, SIG])) == "bad_shape"
    assert reason(msgpack.packb({"v": 1})) == "malformed"


def test_decoder_for_restricts_types() -> None:
    only_requests = codec.decoder_for(Request)
    req = make_request("s", 1, b"x")
    assert only_requests(codec.encode(req)) == req
    with pytest.raises(DecodeError) as info:
        only_requests(frame(V, 3, 0, 1, D, 2, SIG))
    assert info.value.reason == "unknown_type"


FRAMES = [codec.encode(m) for m in sample_messages()]


def _check(data: bytes) -> None:
    try:
        msg = codec.decode(data)
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS
        return
    # whatever decodes re-encodes canonically and decodes to the same message
    assert codec.decode(codec.encode(msg)) == msg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_decode_error(data: bytes) -> None:
    _check(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FRAMES),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from("fidt")),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_frames_only_raise_decode_error(base: bytes, edits) -> None:
    data = bytearray(base)
    for pos, value, op in edits:
        if not data:
            break
        i = pos % len(data)
        if op == "f":
            data[i] ^= 1 << (value % 8)
        elif op == "i":
            data.insert(i, value)
        elif op == "d":
            del data[i]
        else:
            del data[i:]
    _check(bytes(data))


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.binary(max_size=70)
        | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=7),
        max_leaves=30,
    )
)
def test_random_msgpack_structures_only_raise_decode_error(obj) -> None:
    for tag in (None, *codec.TAGS):
        payload = obj if tag is None else [V, tag, *(obj if isinstance(obj, list) else [obj])]
        _check(msgpack.packb(payload))
