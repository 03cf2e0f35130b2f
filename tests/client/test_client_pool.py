"""The client pool without sockets: where requests go, how they are framed, and how
replies complete them (links are stand-ins that record frames; time is the mock clock)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from node.client.pool import ClientPool, Session
from node.config import init_cluster, load_config
from node.protocol import codec
from node.protocol.messages import Reply, ReplyBatch, Request, RequestBatch
from transport import FrameTooLarge, LinkDown


class RecordingLink:
    def __init__(self, max_frame: int = 1 << 20, broken: bool = False) -> None:
        self.frames: list[tuple[float, object]] = []
        self.max_frame = max_frame
        self.broken = broken

    async def send(self, frame: bytes) -> None:
        if self.broken:
            raise LinkDown("gone")
        if len(frame) > self.max_frame:
            raise FrameTooLarge(len(frame), self.max_frame)
        self.frames.append((trio.current_time(), codec.decode(frame)))


@pytest.fixture
def pool(tmp_path: Path) -> ClientPool:
    cfg = load_config(init_cluster(tmp_path / "c", base_port=17200, http_base_port=17300))
    return ClientPool(cfg)


def requests_in(link: RecordingLink) -> list[Request]:
    out: list[Request] = []
    for _, msg in link.frames:
        out.extend(msg.requests if isinstance(msg, RequestBatch) else [msg])  # type: ignore[attr-defined]
    return out


def reply_all(pool: ClientPool, replicas: list[int], requests: list[Request]) -> None:
    for rid in replicas:
        batch = ReplyBatch(tuple(Reply(0, r.timestamp, r.client, rid, b"ok") for r in requests))
        pool._on_frame(rid, batch.wire)


async def test_sessions_woken_together_share_one_frame(pool: ClientPool, autojump_clock) -> None:
    links = {i: RecordingLink() for i in range(4)}
    pool._links.update(links)
    sessions = [Session(pool, f"s{i}") for i in range(20)]
    results: list[bytes] = []

    async def one(session: Session) -> None:
        results.append(await session.invoke(b"op", timeout_s=5))

    async with trio.open_nursery() as nursery:
        for session in sessions:
            nursery.start_soon(one, session)
        await trio.testing.wait_all_tasks_blocked()
        assert len(links[0].frames) == 1  # one RequestBatch to the primary, none elsewhere
        sent = requests_in(links[0])
        assert sorted(r.client for r in sent) == sorted(s.client for s in sessions)
        assert all(len(r.auth) == 4 for r in sent)  # a tag for every replica
        assert not any(links[i].frames for i in (1, 2, 3))
        reply_all(pool, [0, 2], sent)  # f + 1 matching replies, each replica one frame
    assert results == [b"ok"] * 20


async def test_a_request_whose_target_is_not_connected_goes_to_all_at_once(
    pool: ClientPool, autojump_clock
) -> None:
    links = {i: RecordingLink() for i in (1, 2, 3)}  # no connection to the primary
    pool._links.update(links)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Session(pool, "s").invoke, b"op", 5.0)
        await trio.testing.wait_all_tasks_blocked()
        for link in links.values():
            ((at, msg),) = link.frames
            assert at == 0.0 and isinstance(msg, Request)  # not after a retransmission wait
        reply_all(pool, [1, 2], [msg])


async def test_each_session_learns_whether_its_own_request_left(pool: ClientPool) -> None:
    pool.link_config = attrs.evolve(pool.link_config, max_frame=2000)
    pool._links[0] = link = RecordingLink(max_frame=2000)
    pool._links[1] = RecordingLink(broken=True)
    small = [Request(f"client/s{i}", 1, b"op", bytes(64)) for i in range(5)]
    big = Request("client/big", 1, bytes(5000), bytes(64))  # above the frame limit
    outcomes: dict[tuple[int, str], bool] = {}

    async def send(rid: int, request: Request) -> None:
        outcomes[(rid, request.client)] = await pool._send(rid, request)

    async with trio.open_nursery() as nursery:
        for request in [*small[:2], big, *small[2:]]:
            nursery.start_soon(send, 0, request)
        for request in small:
            nursery.start_soon(send, 1, request)
    assert outcomes.pop((0, "client/big")) is False
    assert all(ok for (rid, _), ok in outcomes.items() if rid == 0)  # the others went
    assert sorted(r.client for r in requests_in(link)) == sorted(r.client for r in small)
    assert not any(ok for (rid, _), ok in outcomes.items() if rid == 1)  # the link is gone
    assert len(outcomes) == 10
