"""Property tests: random frames and random bytes never crash the listener or leak tasks.

Each example runs a listener in its own ``trio.run`` and talks to it through in-memory
streams; frames are random in kind (binary / text), size (up to beyond the limit) and
content (some rejected by the decoder). The listener must deliver exactly the valid
frames, in order, report exactly the invalid ones, close the link after each invalid one,
end every connection task, and still accept a fresh good connection afterwards.
"""

from __future__ import annotations

import trio
import trio.testing
import trio_websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.transport.helpers import IDS, PUB, RawWs, Recorder, make_listener, wait_until
from transport.connector import DialSettings, authenticated
from transport.frames import (
    CLIENT_ROUTE,
    CLOSE_INVALID_FRAME,
    CLOSE_OVERSIZED,
    CLOSE_TEXT_FRAME,
    PEER_ROUTE,
    Limits,
)

LIMIT = 512
LIMITS = Limits(peer_max_frame=LIMIT, client_max_frame=LIMIT, handshake_max_frame=1024)


class Rejection(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decoder(data: bytes) -> bytes:
    if data[:1] == b"\xff":
        raise Rejection("bad_shape")
    if data[:1] == b"\xfe":
        raise KeyError("not a declared rejection")
    return data


def expected_outcome(frame: bytes | str, route: str) -> tuple[str | None, int | None]:
    """(reason, close code) the listener must give, or (None, None) if accepted (on the
    peer route a fragment is accepted and held until its message is complete)."""
    if isinstance(frame, str):
        return "text_frame", CLOSE_TEXT_FRAME
    if len(frame) > LIMIT:
        return "oversized", CLOSE_OVERSIZED
    if route == PEER_ROUTE and frame[:1] == b"\xc1" and (len(frame) < 2 or frame[1] > 1):
        return "bad_fragment", CLOSE_INVALID_FRAME
    return decoder_outcome(frame)


def decoder_outcome(data: bytes) -> tuple[str | None, int | None]:
    """What the test decoder makes of a whole message."""
    if data[:1] == b"\xff":
        return "bad_shape", CLOSE_INVALID_FRAME
    if data[:1] == b"\xfe":
        return "malformed", CLOSE_INVALID_FRAME
    return None, None


def sized(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Binary frames of low..high bytes: a random head, then filler (cheap to generate)."""
    return st.tuples(st.binary(max_size=24), st.integers(low, high)).map(
        lambda t: t[0][: t[1]] + bytes(max(0, t[1] - len(t[0])))
    )


valid = sized(0, LIMIT)
# on the peer route 0xC1 starts a fragment (flag 0 more, 1 last, anything else refused)
fragments = st.tuples(st.integers(0, 3), st.binary(max_size=32)).map(
    lambda t: b"\xc1" + bytes([t[0]]) + t[1]
)
invalid = st.one_of(
    sized(LIMIT + 1, 4 * LIMIT),
    st.text(max_size=64),
    st.binary(max_size=32).map(lambda b: b"\xff" + b),
    st.binary(max_size=32).map(lambda b: b"\xfe" + b),
)
# Mostly valid frames, with an invalid one now and then (each ends its connection).
frames = st.lists(
    st.integers(0, 9).flatmap(lambda k: invalid if k == 9 else fragments if k == 8 else valid),
    min_size=25,
    max_size=60,
)


async def _connect(nursery, listener, name: str, route: str):
    """Start serving one in-memory stream and return an authenticated link to it."""
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(listener.handle_stream, server)
    return authenticated(
        client,
        IDS[name],
        "0",
        PUB["0"],
        DialSettings(route=route, max_frame=4 * LIMIT, close_timeout_s=0.1),
    )


async def _send_until_invalid(ws, pending: list[bytes | str], route: str, name: str, log) -> None:
    """Send pending frames on one link until an invalid one closes it, noting the outcomes."""
    expect_frames, expect_invalid, expect_codes, codes = log
    parts: list[bytes] = []  # fragments of a peer message not yet whole
    while pending:
        frame = pending.pop(0)
        reason, code = expected_outcome(frame, route)
        if reason is None and route == PEER_ROUTE and frame[:1] == b"\xc1":
            parts.append(frame[2:])
            if frame[1] == 0:  # more to come: nothing delivered yet
                await ws.send_message(frame)
                continue
            frame, whole = b"".join(parts), frame
            parts = []
            reason, code = decoder_outcome(frame)
            await ws.send_message(whole)
            if reason is not None:  # the joined message is refused
                frame = whole
        else:
            await ws.send_message(frame)
        if reason is None:
            expect_frames.append((name, frame))
            if route == CLIENT_ROUTE:
                assert await ws.get_message() == b"re:" + frame[:64]
            continue
        expect_invalid.append((name, reason))
        expect_codes.append(code)
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed:
            codes.append(ws.closed.code)
        break


async def _check_fresh_link(nursery, listener, rec: Recorder, name: str, route: str) -> None:
    """Check that a fresh, well-behaved connection is still served."""
    async with await _connect(nursery, listener, name, route) as ws:
        await ws.send_message(b"fresh")
        if route == CLIENT_ROUTE:
            assert await ws.get_message() == b"re:fresh"
        else:
            await wait_until(lambda: (name, b"fresh") in rec.frames)


async def feed(frames_: list[bytes | str], route: str) -> None:
    rec = Recorder()
    listener = make_listener(rec, limits=LIMITS)
    listener._peer_decoder = decoder
    listener._client_decoder = decoder
    name = "1" if route == PEER_ROUTE else "client"
    expect_frames, expect_invalid, expect_codes, codes = [], [], [], []
    log = (expect_frames, expect_invalid, expect_codes, codes)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            pending = list(frames_)
            while pending:
                async with await _connect(nursery, listener, name, route) as ws:
                    await _send_until_invalid(ws, pending, route, name, log)
            await _check_fresh_link(nursery, listener, rec, name, route)
            await wait_until(lambda: listener.open_connections == 0)
            nursery.cancel_scope.cancel()
    assert rec.frames == expect_frames + [(name, b"fresh")]
    assert rec.invalid == expect_invalid
    assert codes == expect_codes


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(frames, st.sampled_from([PEER_ROUTE, CLIENT_ROUTE]))
def test_random_frames_through_an_authenticated_link(frames_, route):
    trio.run(feed, frames_, route, clock=trio.testing.MockClock(autojump_threshold=0))


async def spray(chunks: list[bytes], authenticate: bool) -> None:
    rec = Recorder()
    listener = make_listener(rec, limits=LIMITS, handshake_timeout_s=5.0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(listener.handle_stream, server)
            raw = RawWs(client)
            if authenticate:
                await raw.handshake(IDS["1"])
            for chunk in chunks:
                try:
                    await raw.send_raw(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            await raw.aclose()
            await wait_until(lambda: listener.open_connections == 0)
            # Still serving: a good peer gets through.
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(listener.handle_stream, server)
            good = RawWs(client)
            await good.handshake(IDS["2"])
            await good.send_bytes(b"ok")
            await wait_until(lambda: ("2", b"ok") in rec.frames)
            await good.aclose()
            await wait_until(lambda: listener.open_connections == 0)
            nursery.cancel_scope.cancel()
    assert all(name == "2" or authenticate for name, _ in rec.frames)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8), st.booleans())
def test_random_bytes_before_or_after_the_handshake(chunks, authenticate):
    trio.run(spray, chunks, authenticate, clock=trio.testing.MockClock(autojump_threshold=0))
