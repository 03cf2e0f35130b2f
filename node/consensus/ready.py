"""One round's result in the shape the shell applies: persist, arm, then send and say.

``ReplicaCore.handle`` returns a flat list of actions (the simulation and the unit tests
read it as it is). ``Ready.of(actions)`` sorts one round's actions into typed slots, as
etcd raft's ``Ready`` does:

- ``records``: what must be durable before anything of the round leaves;
- ``snapshot``: the newest application snapshot the round took (stored in the background;
  a stable checkpoint record that names it waits for it);
- ``timers``: timers to arm and cancel, in order (they depend on no record);
- ``outbox``: messages to peers, replies to clients and notes for metrics and logs, all of
  which wait for the records (the shell's writer wraps the outbox as ``Durable`` once they
  are on disk, and only a durable outbox can be performed).

Every action type has a slot; an unknown one is a ``TypeError`` here, not an action the
shell forgets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from node.consensus.events import (
    Broadcast,
    CancelTimer,
    CheckpointStable,
    Executed,
    FetchState,
    Persist,
    Rejected,
    ReplyToClient,
    RolledBack,
    Send,
    SnapshotTaken,
    StartTimer,
    StateTransferred,
    ViewChanged,
    ViewChangeStarted,
)

Message = Send | Broadcast
TimerAction = StartTimer | CancelTimer
Note = (
    Executed
    | RolledBack
    | FetchState
    | ViewChanged
    | ViewChangeStarted
    | CheckpointStable
    | StateTransferred
    | Rejected
)

_MESSAGES = (Send, Broadcast)
_TIMERS = (StartTimer, CancelTimer)
_NOTES = (
    Executed,
    RolledBack,
    FetchState,
    ViewChanged,
    ViewChangeStarted,
    CheckpointStable,
    StateTransferred,
    Rejected,
)


@attrs.frozen
class Outbox:
    """What a round sends and says; performed only once its records are durable."""

    messages: tuple[Message, ...] = ()
    replies: tuple[ReplyToClient, ...] = ()
    notes: tuple[Note, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.messages or self.replies or self.notes)


@attrs.frozen
class Ready:
    """A round: records to persist, a snapshot to store, timers, and the outbox."""

    records: tuple[Any, ...] = ()
    snapshot: SnapshotTaken | None = None
    timers: tuple[TimerAction, ...] = ()
    outbox: Outbox = Outbox()

    @classmethod
    def of(cls, actions: Iterable[Any]) -> Ready:
        """Sort a round's actions into their slots, keeping their order in each."""
        records: list[Any] = []
        timers: list[TimerAction] = []
        messages: list[Message] = []
        replies: list[ReplyToClient] = []
        notes: list[Note] = []
        snapshot = None
        for action in actions:
            kind = type(action)
            if kind is Persist:
                records.extend(action.records)
            elif kind in _MESSAGES:
                messages.append(action)
            elif kind is ReplyToClient:
                replies.append(action)
            elif kind in _TIMERS:
                timers.append(action)
            elif kind in _NOTES:
                notes.append(action)
            elif kind is SnapshotTaken:
                snapshot = action
            else:
                raise TypeError(f"the core returned an action of unknown type {kind.__name__}")
        outbox = Outbox(tuple(messages), tuple(replies), tuple(notes))
        return cls(tuple(records), snapshot, tuple(timers), outbox)
