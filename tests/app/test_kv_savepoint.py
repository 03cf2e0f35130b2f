"""The store's one savepoint: a rollback gives back exactly the state at the savepoint."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.app.kv import KVStore, op_cas, op_delete, op_get, op_put

KEYS = st.sampled_from([f"k{i}".encode() for i in range(90)])
OPS = st.one_of(
    st.builds(op_put, KEYS, st.binary(max_size=3)),
    st.builds(op_delete, KEYS),
    st.builds(op_cas, KEYS, st.none() | st.binary(max_size=3), st.binary(max_size=3)),
)


def _store(preload: int) -> KVStore:
    store = KVStore()
    for i in range(preload):
        store.apply(op_put(f"k{i}", b"v"))
    return store


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 70), st.lists(OPS, max_size=40))
def test_rollback_restores_state_snapshot_and_bucket_count(preload, ops) -> None:
    store = _store(preload)
    before = (store.snapshot(), store.digest(), store.buckets, len(store))
    seen = {k: store.query(op_get(k)) for k in (f"k{i}".encode() for i in range(90))}
    store.savepoint()
    for op in ops:
        store.apply(op)
    assert store.savepoint_digest() == before[1]  # the digest as at the savepoint
    for key in (f"k{i}".encode() for i in range(90)):  # reads see the savepoint's state
        assert store.query(op_get(key)) == seen[key]
    store.snapshot()  # encodings cached during the savepoint must not leak
    store.rollback()
    assert (store.snapshot(), store.digest(), store.buckets, len(store)) == before


def test_growth_inside_a_savepoint_is_undone_and_kept_on_release() -> None:
    store = _store(64)  # at the threshold: the next new key grows the buckets fourfold
    buckets = store.buckets
    store.savepoint()
    store.apply(op_put("new", "x"))
    assert store.buckets == 4 * buckets
    store.rollback()
    assert store.buckets == buckets and store.get(b"new") is None
    store.savepoint()
    store.apply(op_put("new", "x"))
    store.release()
    assert store.buckets == 4 * buckets and store.get(b"new") == b"x"
    same = KVStore()
    same.restore(store.snapshot())
    assert same.digest() == store.digest()


def test_one_savepoint_at_a_time_and_none_after_restore() -> None:
    store = _store(3)
    with pytest.raises(RuntimeError):
        store.rollback()
    with pytest.raises(RuntimeError):
        store.release()
    store.savepoint()
    with pytest.raises(RuntimeError):
        store.savepoint()
    store.restore(_store(5).snapshot())
    with pytest.raises(RuntimeError):
        store.rollback()
