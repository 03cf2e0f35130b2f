"""Client-link framing: many requests or replies per frame, always under the frame limit."""

from __future__ import annotations

import pytest

from node.protocol import codec
from node.protocol.framing import reply_frames, reply_size_bound, request_frames, request_size_bound
from node.protocol.messages import ReadBatch, ReadRequest, Reply, ReplyBatch, Request, RequestBatch
from tests.consensus.core_helpers import make_request


def replies(count: int, size: int = 10) -> list[Reply]:
    return [Reply(3, i + 1, f"client/s{i}", 2, bytes([i % 256]) * size) for i in range(count)]


def requests(count: int, size: int = 10) -> list[Request]:
    return [make_request(f"s{i}", i + 1, bytes(size)) for i in range(count)]


def unpack(frames: list[bytes], batch_type: type, field: str) -> list[object]:
    out: list[object] = []
    for frame in frames:
        msg = codec.decode(frame)
        out.extend(getattr(msg, field) if type(msg) is batch_type else [msg])
    return out


def test_a_lone_reply_or_request_keeps_its_own_frame() -> None:
    (r,) = replies(1)
    assert reply_frames([r], 1 << 20) == [r.wire]
    (q,) = requests(1)
    assert request_frames([q], 1 << 20) == [(q.wire, [q])]


def test_a_round_of_replies_is_one_frame() -> None:
    rs = replies(64)
    frames = reply_frames(rs, 1 << 20)
    assert len(frames) == 1
    assert type(codec.decode(frames[0])) is ReplyBatch
    assert unpack(frames, ReplyBatch, "replies") == rs


@pytest.mark.parametrize("limit", [300, 1000, 4096])
def test_batches_split_under_the_limit_and_keep_order(limit: int) -> None:
    rs = replies(50, size=40)
    frames = reply_frames(rs, limit)
    assert len(frames) > 1
    assert all(len(f) <= limit for f in frames)
    assert unpack(frames, ReplyBatch, "replies") == rs
    qs = requests(30, size=40)
    pairs = request_frames(qs, limit)
    frames = [frame for frame, _ in pairs]
    assert all(len(f) <= limit for f in frames)
    assert [q for _, carried in pairs for q in carried] == qs
    decoded = unpack(frames, RequestBatch, "requests")
    assert decoded == qs
    assert [q.auth for q in decoded] == [q.auth for q in qs]  # type: ignore[attr-defined]


def test_an_oversized_message_travels_alone_and_is_refused_by_the_link() -> None:
    big = Reply(0, 1, "client/big", 0, bytes(5000))
    rs = [*replies(3), big, *replies(2)]
    frames = reply_frames(rs, 2000)
    assert big.wire in frames  # alone, so the link's FrameTooLarge names only it
    assert unpack(frames, ReplyBatch, "replies") == rs


def test_size_bounds_are_upper_bounds() -> None:
    for r in [*replies(5), Reply(2**63 - 1, 2**63 - 1, "c/" + "é" * 100, 1023, bytes(70000))]:
        assert len(codec.encode(r)) <= reply_size_bound(r)
    long = make_request("x" * 200, 2**63 - 1, bytes(70000))
    for q in [*requests(5), long]:
        assert len(codec.encode(q)) <= request_size_bound(q)


def test_never_more_messages_in_a_frame_than_the_decoder_takes() -> None:
    rs = replies(codec.MAX_BATCH + 10, size=1)
    frames = reply_frames(rs, 1 << 30)  # a frame limit raised far above the default
    assert len(frames) == 2
    assert unpack(frames, ReplyBatch, "replies") == rs  # every frame decodes


def test_read_only_requests_share_a_read_batch_frame() -> None:
    reads = [ReadRequest(f"client/r{i}", i, b"op", bytes(64)) for i in range(1, 4)]
    frames = request_frames(reads, 1 << 20)
    assert len(frames) == 1 and frames[0][1] == reads
    decoded = codec.decode(frames[0][0])
    assert type(decoded) is ReadBatch and decoded.reads == tuple(reads)
    # a lone read keeps its own frame type, and the ordered kind never mixes in
    assert type(codec.decode(request_frames(reads[:1], 1 << 20)[0][0])) is ReadRequest
    ordered = request_frames([make_request("s", 1, b"op")] * 2, 1 << 20)
    assert type(codec.decode(ordered[0][0])) is RequestBatch
