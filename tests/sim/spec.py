"""The specification the simulation checks replicas against, written apart from the code
under test, so that a bug in `node/app/` or `node/consensus/` cannot also bend the check.

- `ReferenceKV`: the key-value semantics of `node/app/kv.py`'s docstring as a plain dict,
  with its own decoding of operations. Every correct replica carries one, fed the same
  operations as its real store: each result must match, and the store's snapshot, decoded
  by `decode_kv_snapshot` (again independent code), must hold exactly the reference's
  contents.
- `VoteMonitor`: what each correct replica actually holds, from the messages delivered
  to it (directly, inside a NewView, or inside a state response's certificates) and the
  ones it sent itself, each signature checked here with `cryptography`. A correct replica
  may prepare only a pre-prepare of the view's primary it was given, commit only with
  that and 2f prepares, never vote or propose twice for one (view, seq) (across restarts
  too), ask for a view change only on its own timeout or when f + 1 others ask, and
  execute a batch only if 2f + 1 distinct replicas committed its digest in one view in
  what it holds.
"""

from __future__ import annotations

from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.protocol.messages import (
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    StateResponse,
    ViewChange,
    batch_digest,
)

from .tags import TagKeys


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


class VoteMonitor:
    """What each correct replica holds (pre-prepares, prepares and commits delivered to it
    or sent by it, the re-issued pre-prepares of NewViews), checked by this module's own
    means, and what it may send and execute given that."""

    def __init__(
        self, n: int, f: int, replica_keys: dict[int, bytes], tags: TagKeys | None = None
    ) -> None:
        self.n, self.f = n, f
        #: commit authenticators, checked on their own (a commit counts on its tag)
        self.tags = tags
        self.quorum = 2 * f + 1
        self._keys = {r: Ed25519PublicKey.from_public_bytes(k) for r, k in replica_keys.items()}
        #: replica -> kind -> (seq, digest) -> view -> senders
        self.votes: dict[int, dict[type, dict[tuple[int, bytes], dict[int, set[int]]]]] = {}
        #: replica -> (view, seq) -> digests of valid pre-prepares it was given
        self.pps: dict[int, dict[tuple[int, int], set[bytes]]] = {}
        #: replica -> (kind, view, seq) -> the digest it voted for
        self.voted: dict[int, dict[tuple[type, int, int], bytes]] = {}
        self._verdicts: dict[tuple[int, bytes, bytes], bool] = {}
        #: replica -> other replica -> the highest view it asked for, in what it holds
        self.vc_asks: dict[int, dict[int, int]] = {}
        #: replica -> views it sent a view change for
        self.vc_sent: dict[int, set[int]] = {}

    def signed(self, msg: Any) -> bool:
        """Whether `msg` carries a valid signature of its sender (a member)."""
        key = self._keys.get(msg.sender)
        if key is None:
            return False
        cache_key = (msg.sender, msg.payload, msg.signature)
        verdict = self._verdicts.get(cache_key)
        if verdict is None:
            try:
                key.verify(msg.signature, msg.payload)
                verdict = True
            except (InvalidSignature, ValueError, TypeError):
                verdict = False
            if len(self._verdicts) > 200_000:
                self._verdicts.clear()
            self._verdicts[cache_key] = verdict
        return verdict

    def _hold_vote(self, replica: int, vote: Any) -> None:
        if vote.sender >= self.n:
            return
        tagged = (
            type(vote) is Commit and self.tags is not None and self.tags.valid_for(replica, vote)
        )
        if not tagged and not self.signed(vote):
            return
        table = self.votes.setdefault(replica, {}).setdefault(type(vote), {})
        table.setdefault((vote.seq, vote.digest), {}).setdefault(vote.view, set()).add(vote.sender)

    def _hold_pp(self, replica: int, pp: PrePrepare) -> None:
        if (
            pp.sender == pp.view % self.n
            and batch_digest(pp.batch) == pp.digest
            and self.signed(pp)
        ):
            self.pps.setdefault(replica, {}).setdefault((pp.view, pp.seq), set()).add(pp.digest)

    def hold(self, replica: int, msg: Any) -> None:
        """``msg`` was delivered to ``replica`` or sent by it."""
        kind = type(msg)
        if kind is Commit or kind is Prepare:
            self._hold_vote(replica, msg)
        elif kind is PrePrepare:
            self._hold_pp(replica, msg)
        elif kind is ViewChange:
            self._hold_vc(replica, msg)
        elif kind is NewView:
            if msg.sender == msg.view % self.n and self.signed(msg):
                for pp in msg.pre_prepares:
                    if pp.view == msg.view:
                        self._hold_pp(replica, pp)
                for vc in msg.view_changes:
                    self._hold_vc(replica, vc)
        elif kind is StateResponse:
            for entry in msg.entries:
                for commit in entry.commits:
                    self._hold_vote(replica, commit)

    def _hold_vc(self, replica: int, vc: ViewChange) -> None:
        if vc.sender == replica:
            self.vc_sent.setdefault(replica, set()).add(vc.new_view)
        elif vc.sender < self.n and self.signed(vc):
            asks = self.vc_asks.setdefault(replica, {})
            asks[vc.sender] = max(asks.get(vc.sender, -1), vc.new_view)

    def view_change_problem(self, replica: int, vc: ViewChange, timed_out: bool) -> str | None:
        """Why a correct replica must not send ``vc``: it may ask for a view when its own
        timer ran out, when f + 1 others asked for that view or higher, or again."""
        if timed_out or vc.new_view in self.vc_sent.get(replica, ()):
            return None
        asking = [s for s, v in self.vc_asks.get(replica, {}).items() if v >= vc.new_view]
        if len(asking) >= self.f + 1:
            return None
        return (
            f"it asked for view {vc.new_view} with no timeout of its own and only "
            f"{len(asking)} others asking for it or higher (needs f+1)"
        )

    def _count(self, replica: int, kind: type, view: int, seq: int, digest: bytes) -> int:
        views = self.votes.get(replica, {}).get(kind, {}).get((seq, digest), {})
        return len(views.get(view, ()))

    def sent(self, replica: int, msg: Any) -> str | None:
        """Why a correct replica must not have sent ``msg`` (None: it may)."""
        kind = type(msg)
        if kind is PrePrepare:
            return self._proposed(replica, msg)
        if kind is NewView:
            return next(
                filter(None, (self._proposed(replica, pp) for pp in msg.pre_prepares)), None
            )
        if kind is not Prepare and kind is not Commit:
            return None
        key = (kind, msg.view, msg.seq)
        voted = self.voted.setdefault(replica, {})
        earlier = voted.setdefault(key, msg.digest)
        if earlier != msg.digest:
            return f"it voted twice for (view {msg.view}, seq {msg.seq}): two {kind.__name__}s"
        pp_ok = msg.digest in self.pps.get(replica, {}).get((msg.view, msg.seq), ())
        if kind is Prepare and not pp_ok:
            return (
                f"its Prepare (view {msg.view}, seq {msg.seq}) matches no pre-prepare of that "
                "view's primary it was given"
            )
        if kind is Commit:
            prepares = self._count(replica, Prepare, msg.view, msg.seq, msg.digest)
            if not pp_ok or prepares < 2 * self.f:
                return (
                    f"its Commit (view {msg.view}, seq {msg.seq}) rests on "
                    f"{'a' if pp_ok else 'no'} pre-prepare and {prepares} prepares (needs 2f)"
                )
        return None

    def _proposed(self, replica: int, pp: PrePrepare) -> str | None:
        """A primary proposes one batch per (view, seq), across restarts too."""
        if pp.sender != replica:
            return None  # a NewView relayed to a laggard
        voted = self.voted.setdefault(replica, {})
        if voted.setdefault((PrePrepare, pp.view, pp.seq), pp.digest) != pp.digest:
            return f"it proposed two batches for (view {pp.view}, seq {pp.seq})"
        return None

    def commits_held(self, replica: int, view: int, seq: int, digest: bytes) -> int:
        return self._count(replica, Commit, view, seq, digest)

    def justified(self, replica: int, seq: int, digest: bytes) -> bool:
        """2f + 1 distinct replicas committed ``digest`` at ``seq`` in one view, in what
        ``replica`` holds."""
        views = self.votes.get(replica, {}).get(Commit, {}).get((seq, digest), {})
        return any(len(senders) >= self.quorum for senders in views.values())
