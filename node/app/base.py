"""The interface between the consensus core and a replicated state machine.

An ``App`` must be deterministic: the same operations in the same order give the same
results, digests and snapshots on every replica. ``apply`` never raises on a bad operation;
it returns an error result instead (the operation still counts as executed).

Tentative execution (the core runs a prepared batch before it commits) needs one
savepoint: ``savepoint`` starts recording what ``apply`` changes, ``rollback`` undoes
every change since (the state, digest and snapshot are then exactly as at the savepoint),
``release`` keeps the changes and stops recording, ``savepoint_digest`` is the digest as at
the savepoint (what the status page reports). ``restore`` drops a savepoint.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class App(Protocol):
    def apply(self, op: bytes) -> bytes:
        """Execute one operation and return its encoded result."""
        ...

    def query(self, op: bytes) -> bytes | None:
        """The result of a read-only `op` against the current state (as at the savepoint
        while one is open: never a tentative change), changing nothing; None when `op`
        is not read-only (it must then be ordered)."""
        ...

    def digest(self) -> bytes:
        """32-byte digest of the current state (equal states give equal digests)."""
        ...

    def snapshot(self) -> bytes:
        """Canonical encoding of the whole state (equal states give equal bytes)."""
        ...

    def restore(self, snapshot: bytes) -> None:
        """Replace the state with a ``snapshot()``; raise ``ValueError`` if malformed."""
        ...

    def savepoint(self) -> None:
        """Start recording changes (at most one savepoint at a time)."""
        ...

    def rollback(self) -> None:
        """Undo every change since the savepoint, and drop it."""
        ...

    def release(self) -> None:
        """Keep the changes since the savepoint, and drop it."""
        ...

    def savepoint_digest(self) -> bytes:
        """``digest()`` of the state as at the open savepoint (the current one if none is
        open), changing nothing."""
        ...
