"""Admission control: refuse client requests the cluster cannot order in time.

A replica whose queues grow faster than batches commit would let requests wait until the
view-change timer fires, and an overload would look like a faulty primary: view changes,
then more waiting. So a replica refuses a new client request at once, with
``Refused("overloaded")``, when the requests it already tracks (``core.pending_count``)
would take longer than ``WAIT_SHARE`` of the view-change timeout to execute at the rate
it has executed requests over the last ``WINDOW_S`` seconds, or when its inbox is half
full. Below ``FLOOR_BATCHES`` batches' worth of requests nothing is refused, so an idle
cluster takes a burst. Time is passed in (the shell's ``trio.current_time()``).
"""

from __future__ import annotations

from collections import deque

#: the longest expected wait admitted, as a share of the view-change timeout
WAIT_SHARE = 0.25
#: requests always admitted, in batches of ``batch_max``
FLOOR_BATCHES = 4
#: the window the execution rate is measured over
WINDOW_S = 2.0
#: how often the budget is recomputed (it is read for every request)
REFRESH_S = 0.1


class Admission:
    def __init__(self, view_change_timeout_s: float, batch_max: int) -> None:
        self.wait_s = view_change_timeout_s * WAIT_SHARE
        self.floor = FLOOR_BATCHES * batch_max
        self._executed: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._budget = self.floor
        self._computed_at = float("-inf")

    def executed(self, count: int, now: float) -> None:
        """``count`` requests executed at ``now``."""
        if count:
            self._executed.append((now, count))
            self._in_window += count

    def rate(self, now: float) -> float:
        """Requests executed per second over the last ``WINDOW_S``."""
        horizon = now - WINDOW_S
        while self._executed and self._executed[0][0] < horizon:
            self._in_window -= self._executed.popleft()[1]
        return self._in_window / WINDOW_S

    def budget(self, now: float) -> int:
        """How many pending requests a replica may hold before it refuses new ones."""
        if now - self._computed_at >= REFRESH_S:
            self._computed_at = now
            self._budget = max(self.floor, int(self.rate(now) * self.wait_s))
        return self._budget

    def overloaded(self, pending: int, inbox: int, inbox_limit: int, now: float) -> bool:
        return inbox > inbox_limit or pending >= self.budget(now)
