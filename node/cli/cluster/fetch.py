"""Fetch JSON (or a health probe) from a replica's HTTP port, with a short timeout.

The operator tools (`status`, `watch`, the launcher's readiness wait) ask a handful of
replicas a few times a second. Each GET runs stdlib `urllib` in a Trio worker thread
(abandoned on cancel, so Ctrl-C never waits for a slow replica), never goes through an
HTTP proxy from the environment, and refuses bodies over `MAX_BODY` bytes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import attrs
import trio

from node.config import ClusterConfig

MAX_BODY = 1024 * 1024
DEFAULT_TIMEOUT_S = 1.0

# Never route operator traffic through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Hosts a replica may bind for "every interface"; reach those through loopback.
_ANY_HOST = {"0.0.0.0", "::", ""}


class FetchError(Exception):
    """One line saying why a replica did not answer usefully."""


@attrs.frozen
class Endpoint:
    """Where one replica's HTTP endpoints are."""

    id: int
    host: str
    http_port: int

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in _ANY_HOST else self.host
        if ":" in host:  # a bare IPv6 address
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"

    @property
    def status_url(self) -> str:
        return self.base_url + "/status"

    @property
    def metrics_url(self) -> str:
        return self.base_url + "/metrics"

    @property
    def healthz_url(self) -> str:
        return self.base_url + "/healthz"


def endpoints(cfg: ClusterConfig, ids: Iterable[int] | None = None) -> list[Endpoint]:
    """The HTTP endpoints of the config's replicas (all, or the given ids), by id."""
    wanted = None if ids is None else set(ids)
    return [
        Endpoint(r.id, r.host, r.http_port)
        for r in cfg.replicas
        if wanted is None or r.id in wanted
    ]


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            body = resp.read(MAX_BODY + 1)
            return resp.status, body
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            raise FetchError("connection refused") from None
        if isinstance(reason, TimeoutError):
            raise FetchError("timed out") from None
        raise FetchError(str(reason)) from None
    except TimeoutError:
        raise FetchError("timed out") from None
    except (OSError, ValueError) as exc:  # reset mid-body, bad status line, bad URL
        raise FetchError(f"{type(exc).__name__}: {exc}") from None


async def get(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[int, bytes]:
    """GET `url`; returns (status, body). Raises FetchError if nothing usable came back."""
    with trio.move_on_after(timeout + 0.5) as scope:
        result = await trio.to_thread.run_sync(_get, url, timeout, abandon_on_cancel=True)
    if scope.cancelled_caught:
        raise FetchError("timed out")
    return result


async def fetch_json(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """GET `url` and decode its JSON body; FetchError on any HTTP or decoding problem."""
    status, body = await get(url, timeout)
    if status != 200:
        raise FetchError(f"HTTP {status}")
    if len(body) > MAX_BODY:
        raise FetchError(f"body larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FetchError(f"not JSON: {exc}") from None


async def healthy(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """True if `url` (a /healthz) answers 200."""
    try:
        status, _ = await get(url, timeout)
    except FetchError:
        return False
    return status == 200
