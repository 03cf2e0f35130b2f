"""What the simulator's event queue carries: one small frozen class per kind of step."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Deliver:
    src: int
    dst: int
    msg: Any


@attrs.frozen
class ToReplica:
    client: str
    dst: int
    request: Any


@attrs.frozen
class ToClient:
    src: int
    client: str
    reply: Any


@attrs.frozen
class TimerDue:
    replica: int
    name: str


@attrs.frozen
class ClientStep:
    client: int
    retry_ts: int | None = None  # None: start the next request


@attrs.frozen
class Control:
    what: str  # crash | crash_mid_round | restart | partition | heal | gst
    arg: Any = None


@attrs.frozen
class FetchRetry:
    replica: int
    attempt: int
    incarnation: int


@attrs.frozen
class Tick:
    replica: int
