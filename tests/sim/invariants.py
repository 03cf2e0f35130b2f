"""Safety invariants, checked after every simulation step, and the recording app.

`RecordingApp` wraps the real `KVStore` that each replica runs and reports every applied
operation to the `Invariants` ledger. Because every client put writes a fresh key, the
store itself is the executed log: a put of a key that is already present means the same
request executed twice (at-most-once), and an operation that no simulated client created
means an unsigned or forged request executed (validity). `Executed` actions give the
agreement ledger (one batch digest per sequence number across correct replicas), and the
state digest of every correct replica is compared at equal `last_executed`.

Beside the real store each replica's app carries a `spec.ReferenceKV` fed the same
operations: every result the store returns must be the reference's (`app_result`), the
store's snapshot must decode to the reference's contents, and the reference contents of
correct replicas must be equal at equal `last_executed` (`state`): the applied state
itself, not only a digest that the code under test computes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from node.app.kv import KVStore, decode_op, decode_result

from .spec import ReferenceKV, decode_kv_snapshot


@attrs.frozen
class Violation:
    invariant: str  # agreement | validity | at_most_once | state_digest | client_result
    # | liveness | convergence | recovery | exception | app_result | state | unjustified
    # | durability
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


class Invariants:
    """The ledger every correct replica's outputs are checked against."""

    def __init__(self, correct: Iterable[int]) -> None:
        self.correct = frozenset(correct)
        self.violations: list[Violation] = []
        self.created_ops: dict[bytes, tuple[str, int]] = {}  # op -> (session, timestamp)
        self.executed: dict[int, tuple[bytes, int]] = {}  # seq -> (digest, first replica)
        self.state_at: dict[int, tuple[bytes, int]] = {}  # seq -> (state digest, replica)
        #: seq -> (reference contents, replica): the applied state itself
        self.contents_at: dict[int, tuple[dict[bytes, bytes], int]] = {}
        self.last_executed: dict[int, int] = {}
        self.applied = 0

    def fail(self, invariant: str, detail: str) -> None:
        self.violations.append(Violation(invariant, detail))

    # --- inputs ---------------------------------------------------------------------------

    def client_created(self, op: bytes, session: str, timestamp: int) -> None:
        self.created_ops[op] = (session, timestamp)

    def on_apply(self, replica: int, store: KVStore, op: bytes) -> None:
        """Called by a replica's app *before* it applies `op` to `store`."""
        if replica not in self.correct:
            return
        self.applied += 1
        origin = self.created_ops.get(op)
        if origin is None:
            self.fail("validity", f"replica {replica} executed an op no client sent: {op!r:.80}")
            return
        name, key, _, _ = decode_op(op)
        if name == "put" and store.get(key) is not None:
            self.fail(
                "at_most_once",
                f"replica {replica} executed {origin[0]} ts={origin[1]} a second time",
            )

    def on_executed(self, replica: int, seq: int, digest: bytes) -> None:
        if replica not in self.correct:
            return
        first = self.executed.get(seq)
        if first is None:
            self.executed[seq] = (digest, replica)
        elif first[0] != digest:
            self.fail(
                "agreement",
                f"seq {seq}: replica {first[1]} executed {first[0][:4].hex()}, "
                f"replica {replica} executed {digest[:4].hex()}",
            )

    def on_progress(self, replica: int, last_executed: int, state: AppState) -> None:
        """After a step: compare `replica`'s committed state with others at the same seq."""
        if replica not in self.correct:
            return
        previous = self.last_executed.get(replica, 0)
        if last_executed == previous:
            return
        self.last_executed[replica] = last_executed
        self._check_contents(replica, last_executed, state)
        seen = self.state_at.get(last_executed)
        if seen is None:
            self.state_at[last_executed] = (state.digest, replica)
        elif seen[0] != state.digest:
            self.fail(
                "state_digest",
                f"at seq {last_executed}: replica {seen[1]} has {seen[0][:4].hex()}, "
                f"replica {replica} has {state.digest[:4].hex()}",
            )

    def _check_contents(self, replica: int, seq: int, state: AppState) -> None:
        contents = state.contents
        try:
            stored = decode_kv_snapshot(state.snapshot)
        except Exception as exc:  # noqa: BLE001 - an undecodable snapshot is a finding
            self.fail("state", f"replica {replica} at seq {seq}: snapshot undecodable: {exc}")
            return
        if stored != contents:
            self.fail("state", f"replica {replica} at seq {seq}: {_diff(stored, contents)}")
            return
        seen = self.contents_at.get(seq)
        if seen is None:
            self.contents_at[seq] = (dict(contents), replica)
        elif seen[0] != contents:
            self.fail(
                "state",
                f"at seq {seq}: replica {seen[1]} and replica {replica} applied different "
                f"states: {_diff(contents, seen[0])}",
            )

    def app_result(self, replica: int, op: bytes, got: bytes, expected: Any) -> None:
        if replica not in self.correct or expected is None:
            return
        try:
            actual = decode_result(got)
        except ValueError:
            actual = None
        if actual != expected:
            self.fail(
                "app_result",
                f"replica {replica} answered {actual!r:.60} to {op!r:.60}, the spec says "
                f"{expected!r:.60}",
            )

    def client_accepted(self, session: str, timestamp: int, problem: str | None) -> None:
        if problem is not None:
            self.fail("client_result", f"{session} ts={timestamp} accepted a wrong {problem}")


def _diff(a: dict[bytes, bytes], b: dict[bytes, bytes]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    shown = ", ".join(f"{k!r:.40}: {a.get(k)!r:.30} vs {b.get(k)!r:.30}" for k in keys[:3])
    return f"{len(keys)} keys differ ({shown})"


@attrs.frozen
class AppState:
    """What a replica's app holds: the store's digest and snapshot, the reference's
    contents."""

    digest: bytes
    snapshot: bytes
    contents: dict[bytes, bytes]


class RecordingApp:
    """The real `KVStore`, reporting every operation to the ledger before applying it.

    A savepoint (tentative execution) saves the reference contents and the committed
    state beside the store's own undo journal; a rollback must leave the store equal to
    the reference again, which `_check_contents` checks at the next progress."""

    def __init__(self, replica: int, ledger: Invariants) -> None:
        self.replica = replica
        self.ledger = ledger
        self.store = KVStore()
        self.reference = ReferenceKV()
        self._saved: AppState | None = None

    def state(self) -> AppState:
        """The committed state: as at the savepoint while one is open."""
        if self._saved is not None:
            return self._saved
        store = self.store
        return AppState(store.digest(), store.snapshot(), self.reference.data)

    def savepoint(self) -> None:
        self._saved = AppState(
            self.store.digest(), self.store.snapshot(), dict(self.reference.data)
        )
        self.store.savepoint()

    def rollback(self) -> None:
        saved = self._saved
        assert saved is not None, "rollback without a savepoint"
        self._saved = None
        self.store.rollback()
        self.reference = ReferenceKV(saved.contents)

    def release(self) -> None:
        self._saved = None
        self.store.release()

    def savepoint_digest(self) -> bytes:
        return self.store.savepoint_digest()

    def apply(self, op: bytes) -> bytes:
        self.ledger.on_apply(self.replica, self.store, op)
        expected = self.reference.apply(op)
        result = self.store.apply(op)
        self.ledger.app_result(self.replica, op, result, expected)
        return result

    def query(self, op: bytes) -> bytes | None:
        return self.store.query(op)  # changes nothing, so nothing to record

    def digest(self) -> bytes:
        return self.store.digest()

    def snapshot(self) -> bytes:
        return self.store.snapshot()

    def restore(self, snapshot: bytes) -> None:
        self.store.restore(snapshot)  # raises on a bad snapshot: the reference stays
        self.reference = ReferenceKV(decode_kv_snapshot(snapshot))
        self._saved = None
