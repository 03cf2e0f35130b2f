"""A simulated durable store: what survives a crash of one simulated replica.

`DurableStore.write(records)` is one atomic transaction (all `Persist` records of one
`handle` round). Records are kept in their byte form (`encode_record`), and `load()`
decodes them and applies the storage rules with `StoredState.from_records`, so a
restarted replica recovers from exactly the bytes that were durable before its crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from node.consensus.records import (
    StableRecord,
    StoredState,
    ViewRecord,
    decode_record,
    encode_record,
)

_COMPACT_AT = 4000


class DurableStore:
    def __init__(self) -> None:
        self._rows: list[bytes] = []
        self.transactions = 0

    def __len__(self) -> int:
        return len(self._rows)

    def write(self, records: Iterable[Any]) -> None:
        self._rows.extend(encode_record(r) for r in records)
        self.transactions += 1
        if len(self._rows) > _COMPACT_AT:
            self._compact()

    def load(self) -> StoredState:
        return StoredState.from_records(decode_record(row) for row in self._rows)

    def _compact(self) -> None:
        """Drop rows the storage rules make dead (what a real store would have deleted)."""
        view: bytes | None = None
        stable: bytes | None = None
        messages: dict[str, tuple[int, bytes]] = {}
        for row in self._rows:
            record = decode_record(row)
            if isinstance(record, ViewRecord):
                view = row
            elif isinstance(record, StableRecord):
                stable = row
                messages = {k: v for k, v in messages.items() if v[0] > record.seq}
            else:
                messages[record.key] = (record.seq, row)
        head = [row for row in (view, stable) if row is not None]
        self._rows = head + [row for _, row in messages.values()]
