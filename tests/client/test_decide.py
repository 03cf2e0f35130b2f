"""The reply quorum rule: f+1 matching committed replies, or 2f+1 matching of any kind."""

from __future__ import annotations

from node.client.decide import decided
from node.client.pool import ClientPool, _Pending
from node.protocol.messages import Reply


def test_tentative_replies_need_two_f_plus_one() -> None:
    two = {0: b"r", 1: b"r"}
    assert not decided(two, {}, b"r", 1, read_only=False)
    assert decided({**two, 2: b"r"}, {}, b"r", 1, read_only=False)
    assert not decided({**two, 2: b"x"}, {}, b"r", 1, read_only=False)


def test_committed_replies_need_f_plus_one_and_count_with_tentative_ones() -> None:
    assert decided({0: b"r", 1: b"r"}, {0: b"r", 1: b"r"}, b"r", 1, read_only=False)
    assert not decided({0: b"r", 1: b"r"}, {0: b"r"}, b"r", 1, read_only=False)
    # one committed and two tentative: 2f+1 matching of either kind
    assert decided({0: b"r", 1: b"r", 2: b"r"}, {0: b"r"}, b"r", 1, read_only=False)


def test_reads_need_two_f_plus_one_whatever_the_replies_say() -> None:
    assert not decided({0: b"r", 1: b"r"}, {0: b"r", 1: b"r"}, b"r", 1, read_only=True)
    assert decided({0: b"r", 1: b"r", 2: b"r"}, {}, b"r", 1, read_only=True)


def test_the_pool_accepts_a_write_on_tentative_replies_from_two_f_plus_one() -> None:
    pool = ClientPool.__new__(ClientPool)
    pool.n, pool.f, pool.view = 4, 1, 0
    pending = _Pending(read_only=False)
    pool._pending = {("client/s", 1): pending}
    for rid in (0, 1):
        pool._on_reply(rid, Reply(0, 1, "client/s", rid, b"ok", tentative=True))
    assert not pending.done  # two tentative replies prove nothing yet
    pool._on_reply(2, Reply(1, 1, "client/s", 2, b"ok", tentative=True))
    assert pending.done and pending.result == b"ok" and pool.view == 1
