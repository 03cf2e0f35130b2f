"""Safety invariants, checked after every simulation step, and the recording app.

`RecordingApp` wraps the real `KVStore` that each replica runs and reports every applied
operation to the `Invariants` ledger. Because every client put writes a fresh key, the
store itself is the executed log: a put of a key that is already present means the same
request executed twice (at-most-once), and an operation that no simulated client created
means an unsigned or forged request executed (validity). `Executed` actions give the
agreement ledger (one batch digest per sequence number across correct replicas), and the
state digest of every correct replica is compared at equal `last_executed`.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from node.app.kv import KVStore, decode_op


@attrs.frozen
class Violation:
    invariant: str  # agreement | validity | at_most_once | state_digest | client_result
    # | liveness | convergence | recovery | exception
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

    def on_progress(self, replica: int, last_executed: int, state_digest: bytes) -> None:
        """After a step: compare `replica`'s state digest with others at the same seq."""
        if replica not in self.correct:
            return
        previous = self.last_executed.get(replica, 0)
        if last_executed == previous:
            return
        self.last_executed[replica] = last_executed
        seen = self.state_at.get(last_executed)
        if seen is None:
            self.state_at[last_executed] = (state_digest, replica)
        elif seen[0] != state_digest:
            self.fail(
                "state_digest",
                f"at seq {last_executed}: replica {seen[1]} has {seen[0][:4].hex()}, "
                f"replica {replica} has {state_digest[:4].hex()}",
            )

    def client_accepted(self, session: str, timestamp: int, problem: str | None) -> None:
        if problem is not None:
            self.fail("client_result", f"{session} ts={timestamp} accepted a wrong {problem}")


class RecordingApp:
    """The real `KVStore`, reporting every operation to the ledger before applying it."""

    def __init__(self, replica: int, ledger: Invariants) -> None:
        self.replica = replica
        self.ledger = ledger
        self.store = KVStore()

    def apply(self, op: bytes) -> bytes:
        self.ledger.on_apply(self.replica, self.store, op)
        return self.store.apply(op)

    def digest(self) -> bytes:
        return self.store.digest()

    def snapshot(self) -> bytes:
        return self.store.snapshot()

    def restore(self, snapshot: bytes) -> None:
        self.store.restore(snapshot)
