"""The KV app: operation semantics, bad input, snapshot/restore/digest."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.app import App, KVStore, decode_result, op_cas, op_delete, op_get, op_put
from node.app.kv import KEYS_PER_BUCKET, MAX_BUCKETS, MIN_BUCKETS, bucket_of


def run(kv: KVStore, op: bytes) -> tuple[str, bytes | None]:
    return decode_result(kv.apply(op))


def test_is_an_app() -> None:
    assert isinstance(KVStore(), App)


def test_put_get_delete() -> None:
    kv = KVStore()
    assert run(kv, op_get("a")) == ("absent", None)
    assert run(kv, op_put("a", "1")) == ("ok", None)
    assert run(kv, op_get("a")) == ("ok", b"1")
    assert run(kv, op_get(b"a")) == ("ok", b"1")  # str and bytes name the same key
    assert run(kv, op_put(b"a", b"2")) == ("ok", None)
    assert run(kv, op_get("a")) == ("ok", b"2")
    assert run(kv, op_delete("a")) == ("ok", None)
    assert run(kv, op_delete("a")) == ("absent", None)
    assert run(kv, op_get("a")) == ("absent", None)
    assert len(kv) == 0


def test_compare_and_set() -> None:
    kv = KVStore()
    assert run(kv, op_cas("k", None, "v1")) == ("ok", None)  # absent -> set
    assert run(kv, op_cas("k", None, "v2")) == ("mismatch", b"v1")
    assert run(kv, op_cas("k", "v0", "v2")) == ("mismatch", b"v1")
    assert run(kv, op_cas("k", "v1", "v2")) == ("ok", None)
    assert run(kv, op_get("k")) == ("ok", b"v2")
    assert run(kv, op_cas("other", "x", "y")) == ("mismatch", None)


@pytest.mark.parametrize(
    "op",
    [
        b"",
        b"\xc1",
        msgpack.packb("put"),
        msgpack.packb([]),
        msgpack.packb(["put", "k"]),
        msgpack.packb(["put", "k", "v", "extra"]),
        msgpack.packb(["drop", "k"]),
        msgpack.packb(["get", 5]),
        msgpack.packb(["put", "k", None]),
        msgpack.packb(["put", "k" * 5000, "v"]),
        msgpack.packb(["cas", "k", 1, "v"]),
        msgpack.packb([b"get", "k"]),
        msgpack.packb({"op": "get"}),
    ],
)
def test_bad_ops_return_error_and_change_nothing(op: bytes) -> None:
    kv = KVStore()
    kv.apply(op_put("k", "v"))
    before = kv.digest()
    status, value = run(kv, op)
    assert status == "error" and isinstance(value, bytes) and value
    assert kv.digest() == before


def test_snapshot_restore_round_trip_and_digest() -> None:
    a = KVStore()
    for i in range(50):
        a.apply(op_put(f"k{i}", f"v{i}"))
    a.apply(op_delete("k7"))
    b = KVStore()
    b.restore(a.snapshot())
    assert b.digest() == a.digest()
    assert b.snapshot() == a.snapshot()
    assert run(b, op_get("k3")) == ("ok", b"v3")
    assert run(b, op_get("k7")) == ("absent", None)
    # restore replaces, it does not merge
    b.restore(KVStore().snapshot())
    assert len(b) == 0 and b.digest() == KVStore().digest()


def test_digest_depends_on_content_not_history() -> None:
    a, b = KVStore(), KVStore()
    a.apply(op_put("x", "1"))
    a.apply(op_put("y", "2"))
    b.apply(op_put("y", "2"))
    b.apply(op_put("x", "0"))
    assert a.digest() != b.digest()
    b.apply(op_put("x", "1"))
    assert a.digest() == b.digest()
    assert a.snapshot() == b.snapshot()
    assert len(a.digest()) == 32


def test_digest_cache_invalidated_by_writes_only() -> None:
    kv = KVStore()
    kv.apply(op_put("a", "1"))
    d1 = kv.digest()
    kv.apply(op_get("a"))
    kv.apply(op_cas("a", "0", "2"))  # mismatch: no change
    assert kv.digest() == d1
    kv.apply(op_put("a", "2"))
    assert kv.digest() != d1


@pytest.mark.parametrize(
    "snapshot",
    [
        b"junk\xc1",
        msgpack.packb({"a": b"b"}),
        msgpack.packb([[b"a"]]),
        msgpack.packb([["a", b"b"]]),
        msgpack.packb([[b"b", b"1"], [b"a", b"2"]]),  # unsorted
        msgpack.packb([[b"a", b"1"], [b"a", b"2"]]),  # duplicate
    ],
)
def test_restore_rejects_bad_snapshots_and_keeps_state(snapshot: bytes) -> None:
    assert_refused_and_unchanged(snapshot)


def assert_refused_and_unchanged(snapshot: bytes) -> None:
    kv = KVStore()
    kv.apply(op_put("keep", "me"))
    before = kv.digest()
    with pytest.raises(ValueError):
        kv.restore(snapshot)
    assert kv.digest() == before


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "get", "delete", "cas"]),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from([None, "1", "2"]),
            st.sampled_from(["1", "2", "3"]),
        ),
        max_size=40,
    )
)
def test_replicas_agree_and_snapshots_reproduce_state(ops) -> None:
    encoded = []
    for name, key, expected, value in ops:
        if name == "put":
            encoded.append(op_put(key, value))
        elif name == "get":
            encoded.append(op_get(key))
        elif name == "delete":
            encoded.append(op_delete(key))
        else:
            encoded.append(op_cas(key, expected, value))
    a, b = KVStore(), KVStore()
    assert [a.apply(op) for op in encoded] == [b.apply(op) for op in encoded]
    assert a.digest() == b.digest()
    c = KVStore()
    c.restore(a.snapshot())
    assert c.digest() == a.digest()
    # and a model check against a plain dict
    model: dict[bytes, bytes] = {}
    for name, key, expected, value in ops:
        k = key.encode()
        if name == "put":
            model[k] = value.encode()
        elif name == "delete":
            model.pop(k, None)
        elif name == "cas" and model.get(k) == (expected.encode() if expected else None):
            model[k] = value.encode()
    assert {k: a.get(k) for k in model} == model
    assert len(a) == len(model)


def _buckets_with(*entries: tuple[int, list[list[bytes]]], count: int = MIN_BUCKETS) -> bytes:
    buckets: list[list[list[bytes]]] = [[] for _ in range(count)]
    for index, pairs in entries:
        buckets[index] = pairs
    return msgpack.packb(buckets)


def test_snapshot_is_canonical_and_order_independent() -> None:
    a, b = KVStore(), KVStore()
    for i in range(300):
        a.apply(op_put(f"k{i}", f"v{i}"))
    for i in reversed(range(300)):
        b.apply(op_put(f"k{i}", f"v{i}"))
    b.apply(op_put("gone", "x"))
    b.apply(op_delete("gone"))
    assert a.buckets == b.buckets == 256
    assert a.snapshot() == b.snapshot() and a.digest() == b.digest()
    assert KVStore().snapshot() == _buckets_with()  # the empty store: all buckets empty


def test_buckets_grow_fourfold_with_the_store_and_never_shrink() -> None:
    kv = KVStore()
    sizes = []
    for i in range(5000):
        kv.apply(op_put(f"k{i}", "v"))
        sizes.append(kv.buckets)
    assert sorted(set(sizes)) == [16, 64, 256, 1024, 4096]
    assert sizes.index(64) == KEYS_PER_BUCKET * 16  # the key that would exceed 4 per bucket
    for i in range(5000):
        kv.apply(op_delete(f"k{i}"))
    assert kv.buckets == 4096 and len(kv) == 0
    copy = KVStore()
    copy.restore(kv.snapshot())  # the bucket count travels with the snapshot
    assert copy.buckets == 4096 and copy.digest() == kv.digest()
    assert MAX_BUCKETS == 1 << 16


def test_only_written_buckets_are_encoded_again() -> None:
    kv = KVStore()
    for i in range(1000):
        kv.apply(op_put(f"k{i}", "v"))
    first = kv.snapshot()
    kv.apply(op_put("k7", "changed"))
    assert kv._dirty_buckets == {bucket_of(b"k7", kv.buckets)}
    second = kv.snapshot()
    assert second != first and not kv._dirty_buckets
    c = KVStore()
    c.restore(second)
    assert c.get(b"k7") == b"changed" and len(c) == 1000


@pytest.mark.parametrize(
    "case",
    ["wrong_bucket", "unsorted_in_bucket", "not_a_power_of_two", "too_many", "non_canonical"],
)
def test_restore_checks_buckets(case: str) -> None:
    k1, k2 = b"alpha", b"beta"
    n = MIN_BUCKETS
    if case == "wrong_bucket":
        snapshot = _buckets_with(((bucket_of(k1, n) + 1) % n, [[k1, b"1"]]))
    elif case == "unsorted_in_bucket":
        # two keys of one bucket, out of order
        same = [k for k in (f"x{i}".encode() for i in range(1000)) if bucket_of(k, n) == 5][:2]
        snapshot = _buckets_with((5, [[max(same), b"1"], [min(same), b"2"]]))
    elif case == "not_a_power_of_two":
        snapshot = msgpack.packb([[] for _ in range(24)])
    elif case == "too_many":
        snapshot = msgpack.packb([[] for _ in range(MAX_BUCKETS * 2)])
    else:  # a bucket header in a wider msgpack form than the canonical one
        good = _buckets_with((bucket_of(k2, n), [[k2, b"2"]]))
        assert bucket_of(k2, n) != 0 and good[3:4] == b"\x90"  # bucket 0: empty, canonical
        snapshot = good[:3] + b"\xdc\x00\x00" + good[4:]
    assert_refused_and_unchanged(snapshot)
