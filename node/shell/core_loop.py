"""The core loop: rounds of events through the pure core, its timers as deadlines, and
each round's result to the round writer.

A round is the batch of events waiting in the one bounded inbox (up to
``ROUND_MAX_EVENTS``). The loop runs them through ``core.handle``, sorts the actions into
a ``Ready`` (``node.consensus.ready``), arms and cancels its timers (they depend on no
record), hands the newest snapshot to the background saver, and submits the records and
the outbox to the writer, which performs the outbox only once the records are durable.

Timers are deadlines the loop waits on with ``move_on_at``; they fire after the round's
events are handled (an event of the round may have re-armed them), and a due view-change
timer waits until the events that were already in the inbox when it came due are handled:
commits that waited in a busy replica's inbox must not look like a faulty primary.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from node.consensus.core import ReplicaCore
from node.consensus.events import VIEW_CHANGE_TIMER, StartTimer, TimerFired
from node.consensus.ready import Ready
from node.shell.round_writer import RoundWriter

# About half a second of events at the core loop's pace: a longer backlog would only hold
# commits back until the view-change timer fires (peer messages beyond it are dropped
# and counted; the protocol treats them as lost)
INBOX_SIZE = 4_096
ROUND_MAX_EVENTS = 512


class Inbox:
    """The one bounded queue of events for the core; nothing waits to put into it."""

    def __init__(self, size: int = INBOX_SIZE) -> None:
        self.size = size
        self._send, self.receive = trio.open_memory_channel[Any](size)

    def put(self, event: Any) -> bool:
        """Queue `event` now; False when the inbox is full (the caller counts the drop)."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            return False
        return True

    @property
    def depth(self) -> int:
        return self._send.statistics().current_buffer_used


class CoreLoop:
    """Owns the core's timers; the only task that calls ``core.handle``."""

    def __init__(self, core: ReplicaCore, writer: RoundWriter, inbox: Inbox) -> None:
        self.core = core
        self.writer = writer
        self.inbox = inbox
        self.timers: dict[str, float] = {}  # name -> deadline
        #: events still to handle before a due view-change timer may fire
        self._vc_defer: int | None = None

    async def run(
        self, first: list[Any], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply the core's first actions (start or recovery), then loop until cancelled."""
        await self.apply(first)
        task_status.started()
        core = self.core
        receive = self.inbox.receive
        while True:
            deadline = min(self.timers.values(), default=math.inf)
            events: list[Any] = []
            with trio.move_on_at(deadline):
                events.append(await receive.receive())
            if events:
                try:
                    while len(events) < ROUND_MAX_EVENTS:
                        events.append(receive.receive_nowait())
                except trio.WouldBlock:
                    pass
            actions: list[Any] = []
            for event in events:
                actions.extend(core.handle(event))
            if actions:
                await self.apply(actions)  # arms and cancels this round's timers first
            fired = self._due_timers(len(events))
            if fired:
                actions = []
                for name in fired:
                    actions.extend(core.handle(TimerFired(name)))
                await self.apply(actions)

    async def apply(self, actions: list[Any]) -> None:
        """Arm the round's timers, store its snapshot in the background, and pass its
        records and outbox to the writer."""
        ready = Ready.of(actions)
        now = trio.current_time()
        for timer in ready.timers:
            if type(timer) is StartTimer:
                self.timers[timer.timer] = now + timer.delay_s
                if timer.timer == VIEW_CHANGE_TIMER:
                    self._vc_defer = None
            else:
                self.timers.pop(timer.timer, None)
        if ready.snapshot is not None:
            self.writer.save_snapshot(ready.snapshot)
        await self.writer.submit(ready.records, ready.outbox)

    def _due_timers(self, handled: int) -> list[str]:
        """The timers due now, in deadline order; a due view-change timer waits while
        events that were in the inbox when it came due are still unhandled."""
        now = trio.current_time()
        if self._vc_defer is not None:
            self._vc_defer -= handled
        fired = []
        for name, when in sorted(self.timers.items(), key=lambda kv: (kv[1], kv[0])):
            if when > now:
                break
            if name == VIEW_CHANGE_TIMER:
                backlog = self.inbox.depth
                if backlog and self._vc_defer is None:
                    self._vc_defer = backlog
                if backlog and self._vc_defer is not None and self._vc_defer > 0:
                    continue
                self._vc_defer = None
            del self.timers[name]
            fired.append(name)
        return fired
