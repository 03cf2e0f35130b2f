"""The protocol messages, as frozen attrs classes.

Every message has exactly one canonical byte encoding (see ``codec.py``). Each instance
caches, on first use, its wire encoding (``wire``), the canonical bytes its signature
covers (``payload``: the encoding without the signature field) and the SHA-256 of those
(``payload_digest``), so a message that is broadcast, logged, verified and later carried
inside a certificate is encoded and hashed once.

A ``PrePrepare``'s signature covers ``(view, seq, digest, sender)`` but not the batch; the
batch is bound to it through ``digest == batch_digest(batch)``, which every receiver checks.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import attrs


class Encoding:
    """How messages become bytes, installed by ``codec`` when it loads (the
    ``node.protocol`` package imports it first), so this module names no codec and the two
    form no import cycle."""

    wire: Callable[[Any], bytes]
    payload: Callable[[Any], bytes]


@attrs.frozen
class _Message:
    """Shared caching of encodings. Subclasses are the concrete messages."""

    @functools.cached_property
    def wire(self) -> bytes:
        """The full canonical frame (``codec.encode``)."""
        return Encoding.wire(self)

    @functools.cached_property
    def payload(self) -> bytes:
        """The canonical encoding without the signature: what the signature covers."""
        return Encoding.payload(self)

    @functools.cached_property
    def payload_digest(self) -> bytes:
        """SHA-256 of ``payload``."""
        return hashlib.sha256(self.payload).digest()


class _SessionOp(_Message):
    """What a client's ordered and read-only requests share: who signs, and their key."""

    client: str
    timestamp: int

    @property
    def principal(self) -> str:
        """The key name that signs for this session (the part before the first ``/``)."""
        return self.client.split("/", 1)[0]

    @property
    def key(self) -> tuple[str, int]:
        return (self.client, self.timestamp)


@attrs.frozen
class Request(_SessionOp):
    """A client operation. ``client`` is the session string ``"<principal>/<session>"``.

    ``auth`` is the client's authenticator, one MAC per replica id (``crypto.py``). It is
    outside what the signature and the batch digest cover, and outside equality: it only
    lets a replica skip verifying the signature, never changes what is agreed.
    """

    client: str
    timestamp: int
    operation: bytes
    signature: bytes = b""
    auth: tuple[bytes, ...] = attrs.field(default=(), eq=False)


@attrs.frozen
class ReadRequest(_SessionOp):
    """A read-only operation (PBFT's read-only optimisation): each replica answers it from
    its executed state without ordering it, and the client accepts 2f+1 matching replies
    (else it orders the operation as a ``Request``). Fields and signing as ``Request``;
    the type tag is signed too, so neither can pass for the other."""

    client: str
    timestamp: int
    operation: bytes
    signature: bytes = b""
    auth: tuple[bytes, ...] = attrs.field(default=(), eq=False)


@attrs.frozen
class PrePrepare(_Message):
    """The primary's proposal: batch ``batch`` gets sequence number ``seq`` in ``view``."""

    view: int
    seq: int
    digest: bytes
    batch: tuple[Request, ...]
    sender: int
    signature: bytes = b""


@attrs.frozen
class Prepare(_Message):
    view: int
    seq: int
    digest: bytes
    sender: int
    signature: bytes = b""


@attrs.frozen
class Commit(_Message):
    """A vote that the batch ``digest`` prepared at ``seq`` in ``view``. ``auth`` is the
    sender's authenticator, one MAC per replica id (``crypto.Signer.vote_key``): outside
    the signature and equality, like a request's; the receiver it names may check it
    instead of the signature."""

    view: int
    seq: int
    digest: bytes
    sender: int
    signature: bytes = b""
    auth: tuple[bytes, ...] = attrs.field(default=(), eq=False)


@attrs.frozen
class Reply(_Message):
    """A replica's answer to a client. Not signed: the client link is authenticated.

    ``tentative``: the request executed once its batch *prepared*, before it committed
    (PBFT's tentative execution); a client accepts a result from ``2f + 1`` matching
    replies of either kind, or from ``f + 1`` matching committed ones."""

    view: int
    timestamp: int
    client: str
    replica: int
    result: bytes
    tentative: bool = False


@attrs.frozen
class Checkpoint(_Message):
    """``sender`` says: after executing ``seq`` my state digest is ``digest``."""

    seq: int
    digest: bytes
    sender: int
    signature: bytes = b""


@attrs.frozen
class PreparedCert:
    """Proof that ``pre_prepare`` prepared: it plus 2f matching prepares from backups.

    Only ever carried inside a ``ViewChange``; it has no envelope of its own.
    """

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]


@attrs.frozen
class ViewChange(_Message):
    """``sender`` moves to ``new_view``, reporting its stable checkpoint ``stable_seq``
    (with 2f+1 signed checkpoints as proof; empty for the genesis checkpoint 0) and the
    highest-view prepared certificate of every sequence number above it."""

    new_view: int
    stable_seq: int
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCert, ...]
    sender: int
    signature: bytes = b""

    @property
    def stable_digest(self) -> bytes | None:
        return self.checkpoint_proof[0].digest if self.checkpoint_proof else None


@attrs.frozen
class NewView(_Message):
    """The new primary's announcement: 2f+1 view changes and the re-issued pre-prepares."""

    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    sender: int
    signature: bytes = b""


@attrs.frozen
class StateRequest(_Message):
    """Ask a peer for what it has executed after ``after`` (the asker's last executed
    sequence number): its stable checkpoint if that is above ``after``, and the commit
    certificates of the batches it executed above that."""

    after: int
    sender: int


@attrs.frozen
class CommittedEntry:
    """Proof that ``pre_prepare``'s batch committed: it plus 2f+1 matching signed commits.

    Only ever carried inside a ``StateResponse``; it has no envelope of its own.
    """

    pre_prepare: PrePrepare
    commits: tuple[Commit, ...]


@attrs.frozen
class StateResponse(_Message):
    """State after ``seq``: with a ``snapshot``, the responder's stable checkpoint ``seq``
    (the core snapshot and 2f+1 signed checkpoints certifying it); without one (empty
    snapshot and proof), nothing but the entries. ``entries`` are commit certificates for
    ``seq + 1, seq + 2, ...`` in order, so a replica that was away catches up to the
    responder's last executed batch, not only to a checkpoint. A long answer is split
    into several responses, each starting where the previous one ended."""

    seq: int
    snapshot: bytes
    proof: tuple[Checkpoint, ...]
    sender: int
    entries: tuple[CommittedEntry, ...] = ()


@attrs.frozen
class Status(_Message):
    """A replica's periodic word to its peers: the view it is in, its last executed and
    its stable checkpoint. Not signed (peer links are authenticated) and never proof of
    anything: a peer reported behind gets the ``NewView`` of a later view, a replica
    that f+1 peers report ahead of it fetches what it lacks; both are checked."""

    sender: int
    view: int
    last_executed: int
    stable_seq: int


@attrs.frozen
class Refused(_Message):
    """Sent by the shell (not the core) when it cannot serve a request, e.g. no quorum."""

    client: str
    timestamp: int
    replica: int
    reason: str


@attrs.frozen
class Heartbeat(_Message):
    """Shell-level liveness probe: the receiver's shell answers with ``HeartbeatAck``
    through its own outbound path (so its fault mode applies), never the core."""

    sender: int
    nonce: int


@attrs.frozen
class HeartbeatAck(_Message):
    sender: int
    nonce: int


@attrs.frozen
class RequestBatch(_Message):
    """Several client requests in one frame (a client's sessions share a connection).

    Only a framing of the client link: each request is still signed and admitted alone.
    """

    requests: tuple[Request, ...]


@attrs.frozen
class ReadBatch(_Message):
    """The read-only requests a client's sessions issue together, as one frame."""

    reads: tuple[ReadRequest, ...]


@attrs.frozen
class ReplyBatch(_Message):
    """The replies of one core round for the sessions of one client connection."""

    replies: tuple[Reply, ...]


Message = (
    Request
    | ReadRequest
    | PrePrepare
    | Prepare
    | Commit
    | Reply
    | Checkpoint
    | ViewChange
    | NewView
    | StateRequest
    | StateResponse
    | Status
    | Refused
    | Heartbeat
    | HeartbeatAck
    | RequestBatch
    | ReadBatch
    | ReplyBatch
)

#: Messages that carry a ``signature`` field.
SIGNED_TYPES: tuple[type, ...] = (
    Request,
    PrePrepare,
    Prepare,
    Commit,
    Checkpoint,
    ViewChange,
    NewView,
)


def batch_digest(batch: tuple[Request, ...] | list[Request]) -> bytes:
    """The digest a pre-prepare names for ``batch`` (the empty batch is the null request).

    Covers each request's signed payload and its signature, in order (not its
    authenticator, which only the receiving replica can check).
    """
    h = hashlib.sha256(b"bft-batch")
    for request in batch:
        h.update(request.payload_digest)
        h.update(request.signature)
    return h.digest()


NULL_DIGEST: bytes = batch_digest(())
