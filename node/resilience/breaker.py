"""Circuit breaker: a pure per-peer state machine, CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

Time is an input (`now`, seconds on any monotonic clock); jitter comes from an injected
`random.Random`. Nothing here awaits, so under Trio every method is atomic.

Hot path (no exception, no allocation beyond an int permit)::

    permit = breaker.acquire(now)          # an int, or None when the call is rejected
    if permit is None: ...                 # open, or half-open with every test slot taken
    ...                                    # perform the call
    breaker.record_success(permit, now)    # or record_failure(permit, now)
    breaker.release(permit)                # the call was abandoned: count nothing

Rules:
- CLOSED: `failure_threshold` consecutive failures trip it to OPEN; a success resets the
  count.
- OPEN: every `acquire` is rejected until `retry_at`; then the next `acquire` (or
  `update`) moves it to HALF_OPEN. `enter_half_open` does so early (the shell's quorum rule).
- HALF_OPEN: at most `half_open_max_calls` permits are outstanding at once;
  `success_threshold` successes close it; any failure re-opens it with the open timeout
  multiplied by `backoff_multiplier` (capped at `max_open_timeout_s`, jittered). Every
  `backoff_decay_s` spent continuously CLOSED lowers the backoff one step.
- A permit is valid only in the state period that issued it. An outcome for a stale
  permit (say a call admitted while CLOSED that fails after the breaker opened) is
  counted in the totals but never moves the state machine or the half-open accounting.
  Half-open permits are unique, so settling one twice counts it once.
- `force_open` holds the breaker OPEN (no automatic recovery) until `force_close` or
  `reset`.

Transition listeners are called as `listener(peer, old_state, new_state, now)` after the
breaker's own state is consistent.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from node.resilience.settings import BreakerConfig

if TYPE_CHECKING:
    import random

__all__ = ["BreakerStats", "CircuitBreaker", "CircuitState", "TransitionListener"]


class CircuitState(enum.StrEnum):
    """Breaker state; the string values are the contract's /status words."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge(self) -> int:
        """Value of the `circuit_breaker_state` gauge: 0 closed, 1 open, 2 half-open."""
        return _GAUGE[self]


_GAUGE = {CircuitState.CLOSED: 0, CircuitState.OPEN: 1, CircuitState.HALF_OPEN: 2}
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

TransitionListener = Callable[[str, CircuitState, CircuitState, float], None]


@attrs.frozen
class BreakerStats:
    """A point-in-time view of one breaker."""

    state: CircuitState
    failure_count: int  # consecutive failures since the last success
    success_count: int  # successes in the current half-open period
    half_open_calls: int  # half-open permits outstanding
    time_in_state_s: float
    total_successes: int
    total_failures: int
    total_trips: int
    total_rejected: int
    open_timeout_s: float  # length of the current (or last) open period
    backoff_level: int
    forced_open: bool


class CircuitBreaker:
    """One peer's breaker. See the module docstring for the rules."""

    __slots__ = (
        "_closed",
        "_closed_permit",
        "_failures",
        "_forced",
        "_level",
        "_listeners",
        "_max_level",
        "_next_permit",
        "_open_timeout",
        "_opened_at",
        "_probes",
        "_retry_at",
        "_rng",
        "_since",
        "_state",
        "_successes",
        "config",
        "peer",
        "total_failures",
        "total_rejected",
        "total_successes",
        "total_trips",
    )

    def __init__(
        self, peer: str, config: BreakerConfig, rng: random.Random, *, now: float = 0.0
    ) -> None:
        if not isinstance(config, BreakerConfig):
            raise TypeError(f"config must be a BreakerConfig, got {type(config).__name__}")
        self.peer = peer
        self.config = config
        self._rng = rng
        self._listeners: list[TransitionListener] = []
        self._max_level = _max_level(config)
        self._level = 0
        self._open_timeout = config.open_timeout_s
        self._next_permit = 0
        self._init_state(now)

    def _init_state(self, now: float) -> None:
        # Permits keep increasing across resets so no stale permit can ever match again.
        self._next_permit += 1
        self._closed_permit = self._next_permit
        self._state = _CLOSED
        self._closed = True
        self._probes: set[int] = set()
        self._failures = 0
        self._successes = 0
        self._since = now
        self._opened_at = math.inf
        self._retry_at = math.inf
        self._forced = False
        self.total_successes = 0
        self.total_failures = 0
        self.total_trips = 0
        self.total_rejected = 0

    # -- hot path -------------------------------------------------------------------

    def acquire(self, now: float) -> int | None:
        """A permit for one call, or None if the breaker rejects it (counted)."""
        if self._closed:
            return self._closed_permit
        if self._state is _OPEN:
            if self._forced or now < self._retry_at:
                self.total_rejected += 1
                return None
            self._transition(_HALF_OPEN, now)
        if len(self._probes) >= self.config.half_open_max_calls:
            self.total_rejected += 1
            return None
        self._next_permit += 1
        permit = self._next_permit
        self._probes.add(permit)
        return permit

    def record_success(self, permit: int | None, now: float) -> None:
        """The call holding `permit` succeeded."""
        self.total_successes += 1
        if self._closed and permit == self._closed_permit:
            self._failures = 0
            return
        if permit in self._probes:
            self._probes.discard(permit)
            self._failures = 0
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._transition(_CLOSED, now)

    def record_failure(self, permit: int | None, now: float) -> None:
        """The call holding `permit` failed (an error or a timeout)."""
        self.total_failures += 1
        if self._closed and permit == self._closed_permit:
            self._failures += 1
            if self._failures >= self.config.failure_threshold:
                self._trip(now, escalate=False)
            return
        if permit in self._probes:
            self._probes.discard(permit)
            self._failures += 1
            self._trip(now, escalate=True)

    def release(self, permit: int | None) -> None:
        """The call holding `permit` was abandoned (cancelled): free it, count nothing."""
        self._probes.discard(permit)  # type: ignore[arg-type]

    # -- time and manual control ----------------------------------------------------

    def update(self, now: float) -> CircuitState:
        """Apply a due OPEN -> HALF_OPEN transition and return the state."""
        if self._state is _OPEN and not self._forced and now >= self._retry_at:
            self._transition(_HALF_OPEN, now)
        return self._state

    def half_open_due(self, *, urgent: bool = False) -> float:
        """When this OPEN breaker may test the peer (inf if not OPEN or forced).

        `urgent` ignores the backoff: the base open timeout after opening (quorum rule).
        """
        if self._state is not _OPEN or self._forced:
            return math.inf
        if urgent:
            return min(self._retry_at, self._opened_at + self.config.open_timeout_s)
        return self._retry_at

    def enter_half_open(self, now: float) -> bool:
        """Move an OPEN (not forced) breaker to HALF_OPEN now; False if not applicable."""
        if self._state is not _OPEN or self._forced:
            return False
        self._transition(_HALF_OPEN, now)
        return True

    def force_open(self, now: float) -> None:
        """Hold the breaker OPEN until `force_close` or `reset`.

        Opening this way counts as a trip, so `trips` always equals the transitions into
        OPEN that listeners saw.
        """
        self._forced = True
        self._retry_at = math.inf
        if self._state is not _OPEN:
            self._opened_at = now
            self.total_trips += 1
            self._transition(_OPEN, now)

    def force_close(self, now: float) -> None:
        """Close the breaker now, clearing the failure count (the backoff level stays)."""
        self._forced = False
        self._failures = 0
        if self._state is not _CLOSED:
            self._transition(_CLOSED, now)

    def reset(self, now: float) -> None:
        """Back to a fresh CLOSED breaker: counts, totals and backoff cleared."""
        old = self._state
        self._level = 0
        self._open_timeout = self.config.open_timeout_s
        self._init_state(now)
        if old is not _CLOSED:
            self._notify(old, _CLOSED, now)

    def subscribe(self, listener: TransitionListener) -> None:
        """Call `listener(peer, old, new, now)` after every state transition."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: TransitionListener) -> None:
        self._listeners.remove(listener)

    # -- read-only views ------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def trips(self) -> int:
        return self.total_trips

    @property
    def forced_open(self) -> bool:
        return self._forced

    @property
    def retry_at(self) -> float:
        """When OPEN -> HALF_OPEN is due (inf unless OPEN and not forced)."""
        return self._retry_at

    @property
    def opened_at(self) -> float:
        """When the current open period began (inf unless OPEN)."""
        return self._opened_at

    @property
    def open_timeout_s(self) -> float:
        """Length of the current (or most recent) open period."""
        return self._open_timeout

    @property
    def backoff_level(self) -> int:
        return self._level

    @property
    def half_open_calls(self) -> int:
        return len(self._probes)

    @property
    def half_open_free_slots(self) -> int:
        """Permits `acquire` would grant right now in HALF_OPEN (0 in other states)."""
        if self._state is not _HALF_OPEN:
            return 0
        return self.config.half_open_max_calls - len(self._probes)

    def stats(self, now: float) -> BreakerStats:
        return BreakerStats(
            state=self._state,
            failure_count=self._failures,
            success_count=self._successes,
            half_open_calls=len(self._probes),
            time_in_state_s=max(0.0, now - self._since),
            total_successes=self.total_successes,
            total_failures=self.total_failures,
            total_trips=self.total_trips,
            total_rejected=self.total_rejected,
            open_timeout_s=self._open_timeout,
            backoff_level=self._level,
            forced_open=self._forced,
        )

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker peer={self.peer!r} state={self._state.value} "
            f"failures={self._failures} trips={self.total_trips}>"
        )

    # -- internals ------------------------------------------------------------------

    def _trip(self, now: float, *, escalate: bool) -> None:
        cfg = self.config
        if escalate:
            self._level = min(self._level + 1, self._max_level)
        elif self._level:
            steps = int(max(0.0, now - self._since) // cfg.backoff_decay_s)
            self._level = max(0, self._level - steps)
        if self._level == 0:
            timeout = cfg.open_timeout_s
        else:
            nominal = min(
                cfg.open_timeout_s * cfg.backoff_multiplier**self._level, cfg.max_open_timeout_s
            )
            scale = 1.0 + self._rng.uniform(-cfg.jitter, cfg.jitter) if cfg.jitter else 1.0
            timeout = min(max(nominal * scale, cfg.open_timeout_s), cfg.max_open_timeout_s)
        self._open_timeout = timeout
        self._opened_at = now
        self._retry_at = now + timeout
        self.total_trips += 1
        self._transition(_OPEN, now)

    def _transition(self, new: CircuitState, now: float) -> None:
        old = self._state
        self._state = new
        self._closed = new is _CLOSED
        self._since = now
        self._probes.clear()
        self._successes = 0
        if new is not _OPEN:
            self._opened_at = math.inf
            self._retry_at = math.inf
        if new is _CLOSED:
            self._next_permit += 1
            self._closed_permit = self._next_permit
            self._failures = 0
        self._notify(old, new, now)

    def _notify(self, old: CircuitState, new: CircuitState, now: float) -> None:
        for listener in tuple(self._listeners):
            listener(self.peer, old, new, now)


def _max_level(cfg: BreakerConfig) -> int:
    """The first backoff level whose nominal timeout reaches the cap."""
    if cfg.backoff_multiplier <= 1.0:
        return 0
    level, value = 0, cfg.open_timeout_s
    while value < cfg.max_open_timeout_s:
        value *= cfg.backoff_multiplier
        level += 1
    return level
