"""FallbackQueue (pure): ordering, bounds, supersession, retry limit, drop reporting."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.resilience import FallbackConfig, FallbackQueue


def make(max_queue: int = 1000, max_retries: int = 3) -> tuple[FallbackQueue, list]:
    drops: list[tuple[str, object]] = []
    queue = FallbackQueue(
        FallbackConfig(max_queue=max_queue, max_retries=max_retries),
        peer="p1",
        on_drop=lambda reason, item: drops.append((reason, item.payload)),
    )
    return queue, drops


def drain(queue: FallbackQueue) -> list:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item.payload)
    return out


def test_config_defaults_and_validation() -> None:
    assert FallbackConfig().max_queue == 1000
    with pytest.raises(ValueError, match="max_queue must be >= 1"):
        FallbackConfig(max_queue=0)
    with pytest.raises(ValueError, match="max_retries must be >= 1"):
        FallbackConfig(max_retries=0)


def test_request_queueing() -> None:
    queue, drops = make()
    assert len(queue) == 0 and queue.pop() is None and queue.peek() is None
    assert queue.push(b"a", now=1.0) is True
    assert queue.push(b"b", now=2.0) is True
    assert len(queue) == 2
    head = queue.peek()
    assert head is not None and head.payload == b"a" and head.enqueued_at == 1.0
    assert len(queue) == 2  # peek leaves it
    assert drain(queue) == [b"a", b"b"]
    assert queue.counters() == {
        "queued": 0,
        "pushed": 2,
        "dropped_full": 0,
        "dropped_retries": 0,
        "superseded": 0,
    }
    assert drops == []


def test_priority_ordering_then_age() -> None:
    queue, _ = make()
    for payload, priority in [("low1", 0), ("high1", 5), ("mid1", 2), ("low2", 0), ("high2", 5)]:
        queue.push(payload, priority=priority)
    assert [i.payload for i in queue.items()] == ["high1", "high2", "mid1", "low1", "low2"]
    assert drain(queue) == ["high1", "high2", "mid1", "low1", "low2"]


def test_queue_size_limits_drop_lowest_priority_oldest() -> None:
    queue, drops = make(max_queue=3)
    queue.push("lo-old", priority=0)
    queue.push("hi", priority=9)
    queue.push("lo-new", priority=0)
    assert queue.push("mid", priority=5) is True
    assert drops == [("full", "lo-old")]
    assert len(queue) == 3
    # a newcomer below everything queued is the one refused
    assert queue.push("lowest", priority=-1) is False
    assert drops[-1] == ("full", "lowest")
    assert queue.dropped_full == 2
    assert drain(queue) == ["hi", "mid", "lo-new"]


def test_max_retry_enforcement() -> None:
    queue, drops = make(max_retries=3)
    queue.push("m")
    for attempt in (1, 2):
        item = queue.pop()
        assert item is not None and item.attempts == attempt - 1
        assert queue.requeue(item) is True
    item = queue.pop()
    assert item is not None and item.attempts == 2
    assert queue.requeue(item) is False  # third failure: dropped
    assert len(queue) == 0
    assert queue.dropped_retries == 1
    assert drops == [("retries", "m")]
    # a push that already failed max_retries times is refused outright
    assert queue.push("n", attempts=3) is False
    assert queue.dropped_retries == 2


def test_requeue_without_failure_keeps_attempts_and_age() -> None:
    queue, _ = make()
    queue.push("first", priority=1)
    queue.push("second", priority=1)
    item = queue.pop()
    assert item is not None
    queue.push("third", priority=1)
    assert queue.requeue(item, failed=False) is True
    assert item.attempts == 0
    assert drain(queue) == ["first", "second", "third"]


def test_requeue_between_newer_items_keeps_age_order() -> None:
    queue, _ = make()
    queue.push("a", priority=1)
    queue.push("b", priority=1)
    queue.push("c", priority=1)
    first = queue.pop()
    second = queue.pop()
    assert first is not None and second is not None
    queue.requeue(first)
    queue.requeue(second)  # goes between "a" and "c"
    assert drain(queue) == ["a", "b", "c"]
    queue.push("x")
    queued = queue.peek()
    assert queued is not None
    with pytest.raises(ValueError, match="already queued"):
        queue.requeue(queued)


def test_supersession_by_key() -> None:
    queue, drops = make()
    queue.push("checkpoint@100", priority=3, key="checkpoint")
    queue.push("prepare", priority=1)
    queue.push("view-change@1", priority=5, key="view-change")
    queue.push("checkpoint@200", priority=3, key="checkpoint")
    queue.push("view-change@2", priority=5, key="view-change")
    assert queue.superseded == 2
    assert drops == [("superseded", "checkpoint@100"), ("superseded", "view-change@1")]
    assert drain(queue) == ["view-change@2", "checkpoint@200", "prepare"]


def test_requeue_of_an_item_superseded_while_in_flight_is_dropped() -> None:
    queue, drops = make()
    queue.push("ckpt@100", key="ckpt")
    in_flight = queue.pop()
    assert in_flight is not None
    queue.push("ckpt@200", key="ckpt")  # newer one arrives while @100 is being sent
    assert queue.requeue(in_flight) is False
    assert drops == [("superseded", "ckpt@100")]
    assert drain(queue) == ["ckpt@200"]


def test_supersede_up_to_seq_spares_newer_items() -> None:
    queue, _ = make()
    queue.push("old", key="k")
    mark = queue.last_seq
    queue.push("new", key="k")
    assert queue.supersede("k", up_to_seq=mark) is False  # "new" is newer than the mark
    assert queue.supersede("k") is True
    assert len(queue) == 0 and queue.superseded == 2


def test_full_queue_with_supersession_does_not_drop() -> None:
    queue, drops = make(max_queue=2)
    queue.push("a", key="k")
    queue.push("b")
    assert queue.push("a2", key="k") is True
    assert drops == [("superseded", "a")]
    assert queue.dropped_full == 0


def test_clear_and_bad_priority() -> None:
    queue, _ = make()
    queue.push("a")
    queue.push("b")
    assert queue.clear() == 2 and len(queue) == 0
    with pytest.raises(ValueError, match="priority must be an int"):
        queue.push("c", priority=1.5)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 4))),
        max_size=80,
    ),
    st.integers(1, 12),
)
def test_matches_a_reference_model(pushes: list[tuple[int, int | None]], cap: int) -> None:
    queue, _ = make(max_queue=cap)
    model: list[tuple[int, int, int | None]] = []  # (priority, seq, key)
    for seq, (priority, key) in enumerate(pushes, start=1):
        queue.push(seq, priority=priority, key=key)
        if key is not None:
            model = [m for m in model if m[2] != key]
        model.append((priority, seq, key))
        if len(model) > cap:
            model.remove(min(model, key=lambda m: (m[0], m[1])))
    expected = [seq for _, seq, _ in sorted(model, key=lambda m: (-m[0], m[1]))]
    assert len(queue) == len(expected)
    assert drain(queue) == expected


def test_large_queue_stays_ordered() -> None:
    queue, _ = make(max_queue=1000)
    rng = random.Random(3)
    for seq in range(5000):
        queue.push(seq, priority=rng.randrange(4))
    assert len(queue) == 1000 and queue.dropped_full == 4000
    items = queue.items()
    assert all(
        (a.priority, -a.seq) > (b.priority, -b.seq) for a, b in zip(items, items[1:], strict=False)
    )
