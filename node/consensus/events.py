"""What goes into the core (events) and what comes out (actions); all frozen attrs.

The shell applies the actions of one ``handle`` call in order. ``Persist`` must be durable
before any later action of the same round is performed (one transaction per round).

Timer names used by the core: ``"batch"`` (primary: cut a partial batch),
``"view_change"`` (a request waits too long, or a view change takes too long) and
``"status"`` (every ``status_interval_s``: tell the peers where this replica is).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from node.protocol.messages import Message, Reply, Request

#: Timer names the core arms (``StartTimer``) and expects back (``TimerFired``).
BATCH_TIMER = "batch"
VIEW_CHANGE_TIMER = "view_change"
STATUS_TIMER = "status"
#: half-way through a request's wait, a backup forwards its waiting requests again
FORWARD_TIMER = "forward"

# --- events ------------------------------------------------------------------------------


@attrs.frozen
class RequestReceived:
    """A request from a client link."""

    request: Request


@attrs.frozen
class MessageReceived:
    """A decoded message from the authenticated link of replica ``sender``."""

    sender: int
    msg: Message


@attrs.frozen
class TimerFired:
    timer: str


Event = RequestReceived | MessageReceived | TimerFired

# --- actions -----------------------------------------------------------------------------


@attrs.frozen
class Persist:
    """Records to make durable (see ``recovery.py`` for what storage does with each)."""

    records: tuple[Any, ...] = attrs.field(converter=tuple)


@attrs.frozen
class Send:
    to: int
    msg: Message


@attrs.frozen
class Broadcast:
    """Send ``msg`` to every other replica."""

    msg: Message


@attrs.frozen
class ReplyToClient:
    client: str
    reply: Reply


@attrs.frozen
class StartTimer:
    """Arm (or re-arm, replacing) ``timer`` to fire ``delay_s`` from now."""

    timer: str
    delay_s: float


@attrs.frozen
class CancelTimer:
    timer: str


@attrs.frozen
class FetchState:
    """This replica is behind: ask peers (healthiest first, one at a time) for what they
    executed after ``core.last_executed`` with ``StateRequest``, until ``core.fetching``
    is ``None`` (reached ``seq``, the point a certified checkpoint or f+1 peers showed)."""

    seq: int


@attrs.frozen
class Executed:
    seq: int
    view: int
    digest: bytes
    n_requests: int


@attrs.frozen
class RolledBack:
    """The batch executed tentatively at ``seq`` in ``view`` was undone: ``reason`` is
    ``view_change`` or ``other_batch_committed``."""

    seq: int
    view: int
    reason: str


@attrs.frozen
class ViewChanged:
    view: int
    primary: int


@attrs.frozen
class ViewChangeStarted:
    """This replica left its view for ``target``; ``reason`` is ``timeout`` (a request
    waited too long), ``no_new_view`` (the view change gathered a quorum but no valid
    ``NewView`` came in time), ``joined`` (f+1 peers asked for higher views) or
    ``restart`` (it was changing views when it stopped)."""

    view: int
    target: int
    reason: str


@attrs.frozen
class SnapshotTaken:
    """This replica took its checkpoint after executing ``seq``: ``snapshot`` is the core
    snapshot, ``digest`` its checkpoint digest. Nothing depends on it being stored; a
    shell may write it ahead of time, so that the ``StableRecord`` that follows once the
    checkpoint is stable finds it on disk already."""

    seq: int
    digest: bytes
    snapshot: bytes = attrs.field(repr=False)


@attrs.frozen
class CheckpointStable:
    seq: int


@attrs.frozen
class Rejected:
    """An invalid input; ``sender`` is a replica id or a client session string."""

    sender: int | str
    reason: str


@attrs.frozen
class StateTransferred:
    seq: int


Action = (
    Persist
    | SnapshotTaken
    | Send
    | Broadcast
    | ReplyToClient
    | StartTimer
    | CancelTimer
    | FetchState
    | Executed
    | RolledBack
    | ViewChanged
    | ViewChangeStarted
    | CheckpointStable
    | Rejected
    | StateTransferred
)

#: Actions that only inform (metrics, logs); the protocol works if the shell ignores them.
INFORMATIONAL: tuple[type, ...] = (
    Executed,
    RolledBack,
    ViewChanged,
    ViewChangeStarted,
    CheckpointStable,
    Rejected,
    StateTransferred,
)

#: Every ``Rejected.reason`` the core emits.
REJECT_REASONS: Sequence[str] = (
    "unknown_sender",  # not a replica / not a known client principal
    "sender_mismatch",  # message's sender field differs from the authenticated link
    "bad_signature",
    "wrong_view",  # a message for a view this replica is not in (and not merely old)
    "not_primary",  # a pre-prepare or new-view from a replica that is not that view's primary
    "out_of_window",  # sequence number above the high watermark
    "digest_mismatch",  # pre-prepare digest does not match its batch
    "equivocation",  # a second, different message for the same slot from the same sender
    "bad_certificate",  # malformed view-change / new-view / prepared certificate
    "bad_proof",  # checkpoint proof that does not certify what it claims
    "bad_snapshot",  # state response whose snapshot does not match the certified digest
    "wrong_role",  # a prepare from the primary of its view
    "unexpected_message",  # a message type replicas do not send to each other
    "overloaded",  # too many pending requests (or reads waiting)
    "not_read_only",  # a read-only request of an operation that changes state
)
