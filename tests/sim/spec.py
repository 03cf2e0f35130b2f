"""The specification the simulation checks replicas against, written apart from the code
under test, so that a bug in `node/app/` or `node/consensus/` cannot also bend the check.

- `ReferenceKV`: the key-value semantics of `node/app/kv.py`'s docstring as a plain dict,
  with its own decoding of operations. Every correct replica carries one, fed the same
  operations as its real store: each result must match, and the store's snapshot, decoded
  by `decode_kv_snapshot` (again independent code), must hold exactly the reference's
  contents.
- `CommitMonitor`: which commit votes each correct replica actually holds, from the
  messages delivered to it (directly, or inside a state response's certificates) and the
  ones it sent itself, each signature checked here with `cryptography`. A correct replica
  may execute a batch only if 2f + 1 distinct replicas committed its digest in one view in
  what it holds.
"""

from __future__ import annotations

from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.consensus.messages import Commit, StateResponse


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)


def _as_key(value: Any) -> bytes | None:
    if type(value) is str:
        return value.encode()
    return value if type(value) is bytes else None


class ReferenceKV:
    """put / get / delete / cas over a dict; results as ``(status, value)``."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})

    def apply(self, op: bytes) -> tuple[str, bytes | None] | None:
        """The expected result, or None for an operation the spec does not judge
        (malformed: the store answers with an error of its own wording)."""
        try:
            parts = _unpack(op)
        except Exception:  # noqa: BLE001 - not msgpack: an error result
            return None
        if type(parts) is not list or not parts:
            return None
        name, args = parts[0], [_as_key(p) if p is not None else None for p in parts[1:]]
        data = self.data
        if name == "put" and len(args) == 2 and None not in args:
            data[args[0]] = args[1]
            return ("ok", None)
        if name == "get" and len(args) == 1 and args[0] is not None:
            value = data.get(args[0])
            return ("ok", value) if value is not None else ("absent", None)
        if name == "delete" and len(args) == 1 and args[0] is not None:
            if data.pop(args[0], None) is None:
                return ("absent", None)
            return ("ok", None)
        if name == "cas" and len(args) == 3 and args[0] is not None and args[2] is not None:
            current = data.get(args[0])
            if current != args[1]:
                return ("mismatch", current)
            data[args[0]] = args[2]
            return ("ok", None)
        return None


def decode_kv_snapshot(snapshot: bytes) -> dict[bytes, bytes]:
    """The contents of a KV snapshot (an array of buckets of ``[key, value]`` pairs)."""
    out: dict[bytes, bytes] = {}
    for bucket in _unpack(snapshot):
        for key, value in bucket:
            if key in out:
                raise ValueError(f"key {key!r:.40} twice in a snapshot")
            out[key] = value
    return out


class CommitMonitor:
    """The commit votes each replica holds, checked by this module's own means."""

    def __init__(self, n: int, f: int, replica_keys: dict[int, bytes]) -> None:
        self.quorum = 2 * f + 1
        self.n = n
        self._keys = {r: Ed25519PublicKey.from_public_bytes(k) for r, k in replica_keys.items()}
        #: replica -> (seq, digest) -> view -> senders
        self.held: dict[int, dict[tuple[int, bytes], dict[int, set[int]]]] = {}
        self._verdicts: dict[tuple[int, bytes, bytes], bool] = {}

    def _valid(self, commit: Commit) -> bool:
        key = self._keys.get(commit.sender)
        if key is None:
            return False
        cache_key = (commit.sender, commit.payload, commit.signature)
        verdict = self._verdicts.get(cache_key)
        if verdict is None:
            try:
                key.verify(commit.signature, commit.payload)
                verdict = True
            except (InvalidSignature, ValueError, TypeError):
                verdict = False
            if len(self._verdicts) > 200_000:
                self._verdicts.clear()
            self._verdicts[cache_key] = verdict
        return verdict

    def hold(self, replica: int, commit: Commit) -> None:
        if type(commit) is not Commit or not self._valid(commit):
            return
        views = self.held.setdefault(replica, {}).setdefault((commit.seq, commit.digest), {})
        views.setdefault(commit.view, set()).add(commit.sender)

    def delivered(self, replica: int, msg: Any) -> None:
        kind = type(msg)
        if kind is Commit:
            self.hold(replica, msg)
        elif kind is StateResponse:
            for entry in msg.entries:
                for commit in entry.commits:
                    self.hold(replica, commit)

    def justified(self, replica: int, seq: int, digest: bytes) -> bool:
        views = self.held.get(replica, {}).get((seq, digest), {})
        return any(len(senders) >= self.quorum for senders in views.values())
