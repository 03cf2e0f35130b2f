"""`Ready.of` sorts a round's actions into typed slots, keeps each slot's order, and
refuses an action type it does not know."""

from __future__ import annotations

import typing

import pytest

import node.consensus.events as events
from node.consensus.events import (
    Broadcast,
    CancelTimer,
    Executed,
    Persist,
    Rejected,
    ReplyToClient,
    Send,
    SnapshotTaken,
    StartTimer,
)
from node.consensus.ready import Message, Note, Outbox, Ready, TimerAction


def test_each_action_goes_to_its_slot_in_order() -> None:
    snap1, snap2 = SnapshotTaken(1, b"d", b"s1"), SnapshotTaken(2, b"d", b"s2")
    actions = [
        Persist(("r1", "r2")),
        Send(1, "m1"),
        StartTimer("batch", 1.0),
        ReplyToClient("c/1", "reply"),
        snap1,
        Broadcast("m2"),
        Executed(1, 0, b"d", 3),
        Persist(("r3",)),
        CancelTimer("batch"),
        Rejected(2, "bad_signature"),
        snap2,
    ]
    ready = Ready.of(actions)
    assert ready.records == ("r1", "r2", "r3")
    assert ready.snapshot is snap2  # the newest wins
    assert ready.timers == (StartTimer("batch", 1.0), CancelTimer("batch"))
    assert ready.outbox.messages == (Send(1, "m1"), Broadcast("m2"))
    assert ready.outbox.replies == (ReplyToClient("c/1", "reply"),)
    assert ready.outbox.notes == (Executed(1, 0, b"d", 3), Rejected(2, "bad_signature"))


def test_an_empty_round_is_empty() -> None:
    ready = Ready.of([])
    assert ready == Ready() and not ready.outbox and ready.records == ()
    assert Outbox(notes=(Executed(1, 0, b"", 1),))


def test_every_action_the_core_defines_has_a_slot() -> None:
    actions = set(typing.get_args(events.Action))
    slotted = {Persist, SnapshotTaken, ReplyToClient}
    slotted |= set(typing.get_args(Message)) | set(typing.get_args(TimerAction))
    slotted |= set(typing.get_args(Note))
    assert actions == slotted


def test_an_unknown_action_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown type str"):
        Ready.of(["not an action"])
