"""Pure pieces: frame checks, decoder mapping, fault reporting, write coalescing."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from transport.batching import CorkedStream
from transport.frames import (
    CLOSE_INVALID_FRAME,
    CLOSE_OVERSIZED,
    CLOSE_TEXT_FRAME,
    FrameRejected,
    Limits,
    check_frame,
    close_code_for,
    decode_frame,
)
from transport.reporting import FaultReporter


def test_check_frame():
    assert check_frame(b"abc", 3) == b"abc"
    with pytest.raises(FrameRejected) as info:
        check_frame(b"abcd", 3)
    assert (info.value.reason, info.value.code) == ("oversized", CLOSE_OVERSIZED)
    with pytest.raises(FrameRejected) as info:
        check_frame("text", 100)
    assert (info.value.reason, info.value.code) == ("text_frame", CLOSE_TEXT_FRAME)


def test_decoder_reasons_pass_through_and_other_errors_are_malformed():
    class DecodeError(Exception):
        reason = "unknown_type"

    def strict(data: bytes) -> int:
        if data == b"t":
            raise DecodeError()
        return int(data)

    assert decode_frame(b"12", strict) == 12
    with pytest.raises(FrameRejected) as info:
        decode_frame(b"t", strict)
    assert (info.value.reason, info.value.code) == ("unknown_type", CLOSE_INVALID_FRAME)
    with pytest.raises(FrameRejected) as info:
        decode_frame(b"x", strict)  # ValueError from int(): a bug or bad input, never a crash
    assert info.value.reason == "malformed"


def test_close_codes_and_route_limits():
    assert close_code_for("bad_signature") == 4002 and close_code_for("bad_shape") == 4005
    limits = Limits()
    assert limits.for_route("/peer") == 16 * 1024 * 1024
    assert limits.for_route("/client") == 64 * 1024


def test_fault_reporter_counts_every_fault_but_warns_once(caplog):
    seen = []
    faults = FaultReporter(lambda source, reason: seen.append((source, reason)))
    with caplog.at_level(logging.DEBUG, logger="transport"):
        for _ in range(3):
            faults.invalid("10.0.0.9", "bad_signature", claimed="1")
        faults.invalid("10.0.0.9", "replayed")
    assert seen == [("10.0.0.9", "bad_signature")] * 3 + [("10.0.0.9", "replayed")]
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("WARNING", "event=invalid source=10.0.0.9 reason=bad_signature claimed=1"),
        ("DEBUG", "event=invalid source=10.0.0.9 reason=bad_signature claimed=1"),
        ("DEBUG", "event=invalid source=10.0.0.9 reason=bad_signature claimed=1"),
        ("WARNING", "event=invalid source=10.0.0.9 reason=replayed"),
    ]


class CountingStream(trio.abc.Stream):
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def send_all(self, data) -> None:
        await trio.lowlevel.checkpoint()
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes=None) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_corked_writes_go_out_together_and_in_order():
    inner = CountingStream()
    stream = CorkedStream(inner, direct_bytes=100)
    await stream.send_all(b"a")  # not corked: straight through
    stream.cork()
    await stream.send_all(b"b")
    await stream.send_all(b"c")
    await stream.send_all(b"L" * 100)  # large: buffered bytes first, then it, directly
    await stream.send_all(b"d")
    assert stream.buffered == 1
    await stream.flush()
    await stream.send_all(b"e")
    assert inner.writes == [b"a", b"bc", b"L" * 100, b"d", b"e"]
    assert b"".join(inner.writes) == b"abc" + b"L" * 100 + b"de"


def test_fragments_split_and_join_back() -> None:
    from transport.fragments import FRAGMENT, Reassembler, split

    data = bytes(range(256)) * 10
    parts = split(data, 100)
    assert all(len(p) <= 100 and p[0] == FRAGMENT for p in parts)
    assert split(b"short", 100) == [b"short"]
    joiner = Reassembler(max_message=len(data))
    out = [joiner.feed(p) for p in parts]
    assert out[:-1] == [None] * (len(parts) - 1) and out[-1] == data
    assert joiner.pending == 0 and joiner.feed(b"\x93plain") == b"\x93plain"


def test_malformed_or_endless_fragments_are_refused() -> None:
    from transport.fragments import Reassembler, split
    from transport.frames import FrameRejected

    joiner = Reassembler(max_message=150)
    for bad in (b"\xc1", b"\xc1\x07rest"):
        with pytest.raises(FrameRejected) as err:
            joiner.feed(bad)
        assert err.value.reason == "bad_fragment"
    parts = split(b"z" * 400, 100)
    with pytest.raises(FrameRejected) as err:
        for p in parts:
            joiner.feed(p)
    assert err.value.reason == "oversized" and joiner.pending == 0
