"""Readable trace of a simulation: the last N events, printed when a schedule fails.

Each line is `time  kind  from -> to  Message(v=.. seq=.. d=..)`. Messages are described
generically from common field names (view, seq, digest, replica, timestamp, client), so the
trace needs no knowledge of the message classes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

_FIELDS = (
    ("view", "v"),
    ("new_view", "v"),
    ("seq", "seq"),
    ("last_stable", "stable"),
    ("stable_seq", "stable"),
    ("sender", "s"),
    ("replica", "r"),
    ("client", "c"),
    ("timestamp", "ts"),
)
_DIGESTS = ("digest", "state_digest", "batch_digest")


def describe(msg: Any) -> str:
    """A short one-line description of any message or event payload."""
    if msg is None:
        return "-"
    if isinstance(msg, str | int | float):
        return str(msg)
    parts = []
    for name, short in _FIELDS:
        value = getattr(msg, name, None)
        if isinstance(value, int | str) and not isinstance(value, bool):
            parts.append(f"{short}={value}")
    for name in _DIGESTS:
        value = getattr(msg, name, None)
        if isinstance(value, bytes | bytearray):
            parts.append(f"{name[0]}={bytes(value)[:3].hex()}")
            break
    return f"{type(msg).__name__}({' '.join(parts)})"


@attrs.frozen
class TraceLine:
    time: float
    kind: str
    src: Any
    dst: Any
    what: Any  # described lazily, only when the trace is printed

    def render(self) -> str:
        if self.dst is not None:
            route = f"{self.src!s:>10} -> {self.dst!s:<10}"
        else:
            route = f"{self.src!s:>10}"
        text = self.what if isinstance(self.what, str) else describe(self.what)
        return f"{self.time:9.4f}  {self.kind:<9} {route:<24} {text}"


class Trace:
    """A bounded ring buffer of trace lines (cheap enough to keep on for every run)."""

    def __init__(self, keep: int = 200) -> None:
        self.lines: deque[TraceLine] = deque(maxlen=keep)
        self.total = 0

    def add(self, time: float, kind: str, src: Any, dst: Any = None, what: Any = None) -> None:
        self.total += 1
        self.lines.append(TraceLine(time, kind, src, dst, what))

    def render(self) -> str:
        skipped = self.total - len(self.lines)
        head = f"... {skipped} earlier events not shown\n" if skipped > 0 else ""
        return head + "\n".join(line.render() for line in self.lines)
