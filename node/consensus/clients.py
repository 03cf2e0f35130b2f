"""The replicated client table and the core's checkpoint snapshot format.

At-most-once execution: for every client session the table keeps the timestamp of the last
executed request and its result. A request with a higher timestamp is new; an equal one is
a retransmission (answered from the table); a lower one is stale. The table is part of the
replicated state: the core's checkpoint snapshot is ``[1, app snapshot, table]`` and the
checkpoint digest is the SHA-256 of that snapshot, so the table survives state transfer and
replicas that disagree on it disagree on the digest. The table holds no view or replica id
(those differ between replicas); replies are rebuilt from it when resent.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack

from node.protocol.strict import unpack

SNAPSHOT_VERSION = 1

NEW, RETRANSMISSION, STALE = "new", "retransmission", "stale"


class ClientTable:
    def __init__(self) -> None:
        self._last: dict[str, tuple[int, bytes]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def last_timestamp(self, client: str) -> int:
        entry = self._last.get(client)
        return entry[0] if entry is not None else -1

    def classify(self, client: str, timestamp: int) -> str:
        last = self.last_timestamp(client)
        if timestamp > last:
            return NEW
        return RETRANSMISSION if timestamp == last else STALE

    def cached(self, client: str) -> tuple[int, bytes] | None:
        """``(timestamp, result)`` of the last executed request of ``client``."""
        return self._last.get(client)

    def record(self, client: str, timestamp: int, result: bytes) -> None:
        self._last[client] = (timestamp, result)

    def restore_row(self, client: str, row: tuple[int, bytes] | None) -> None:
        """Put back a row as it was (None: the client had no row): undoing a batch."""
        if row is None:
            self._last.pop(client, None)
        else:
            self._last[client] = row

    def to_wire(self) -> list[list[Any]]:
        return [[c, ts, result] for c, (ts, result) in sorted(self._last.items())]

    @classmethod
    def from_wire(cls, rows: Any) -> ClientTable:
        if type(rows) is not list:
            raise ValueError("client table is not a list")
        table = cls()
        previous: str | None = None
        for row in rows:
            if (
                type(row) is not list
                or len(row) != 3
                or type(row[0]) is not str
                or type(row[1]) is not int
                or row[1] < 0
                or type(row[2]) is not bytes
            ):
                raise ValueError("bad client table row")
            if previous is not None and row[0] <= previous:
                raise ValueError("client table not sorted")
            previous = row[0]
            table._last[row[0]] = (row[1], row[2])
        return table


def encode_snapshot(app_snapshot: bytes, clients: ClientTable) -> bytes:
    return msgpack.packb([SNAPSHOT_VERSION, app_snapshot, clients.to_wire()])


def decode_snapshot(snapshot: bytes) -> tuple[bytes, ClientTable]:
    """Split a core snapshot into the app snapshot and the client table (``ValueError``)."""
    obj = unpack(snapshot, "snapshot")
    if type(obj) is not list or len(obj) != 3 or obj[0] != SNAPSHOT_VERSION:
        raise ValueError("not a core snapshot")
    if type(obj[1]) is not bytes:
        raise ValueError("app snapshot is not bytes")
    return obj[1], ClientTable.from_wire(obj[2])


def snapshot_digest(snapshot: bytes) -> bytes:
    """The checkpoint digest of a core snapshot."""
    return hashlib.sha256(snapshot).digest()
