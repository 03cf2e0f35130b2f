"""Reporting faults seen on the wire: one callback for counting, one log line for people.

``on_invalid(source, reason)`` is the caller's counter (the replica maps it to
``bft_invalid_messages_total{peer, reason}``). ``source`` is the authenticated endpoint
name once a handshake succeeded, and the remote host otherwise -- an unauthenticated
connection may claim any name, so a failure before authentication is never blamed on
the name it claimed (that name appears in the log line only).

Logging is key=value on the ``transport`` logger: the first fault for a given
(source, reason) pair logs at WARNING, repeats at DEBUG, so a flood of bad connections
cannot flood the log.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("transport")

OnInvalid = Callable[[str, str], None]


def _ignore(_source: str, _reason: str) -> None:
    return None


class FaultReporter:
    """Counts (via ``on_invalid``) and logs each wire fault once per (source, reason)."""

    def __init__(self, on_invalid: OnInvalid | None = None, *, memory: int = 1024) -> None:
        self._on_invalid = on_invalid or _ignore
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._memory = memory

    def invalid(self, source: str, reason: str, **details: object) -> None:
        """Report one fault: call on_invalid and log it (WARNING the first time)."""
        self._on_invalid(source, reason)
        key = (source, reason)
        first = key not in self._logged
        if first:
            self._logged[key] = None
            if len(self._logged) > self._memory:
                self._logged.popitem(last=False)
        level = logging.WARNING if first else logging.DEBUG
        if log.isEnabledFor(level):
            extra = "".join(f" {k}={_fmt(v)}" for k, v in details.items())
            log.log(level, "event=invalid source=%s reason=%s%s", source, reason, extra)


def _fmt(value: object) -> str:
    text = str(value)
    return repr(text) if (not text or " " in text or "=" in text) else text
