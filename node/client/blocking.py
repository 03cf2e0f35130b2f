"""The blocking client for scripts and other event loops: ``with node.client.Client(PATH)
as kv: kv.put(k, v)``. One background thread runs Trio and the `KV` of ``connect``; each
call from any thread is handed to it (``trio.from_thread``) and blocks until it is done,
so many threads may share one client, and their calls run concurrently on one pool.

Errors are those of the Trio client (``node.client.errors``), raised in the calling
thread; a bad config fails in the constructor. ``close()`` (or leaving the ``with``)
stops the thread within its grace period and makes further calls raise ``ClientError``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import trio

from node.client.api import KV, connect
from node.client.errors import ClientError
from node.config import ClusterConfig, load_config

__all__ = ["Client"]

Data = str | bytes
#: how long `close` waits for the background thread to finish
CLOSE_GRACE_S = 5.0


class Client:
    """A thread-safe, blocking handle on the cluster in `config` (see `connect`)."""

    def __init__(
        self,
        config: str | os.PathLike[str] | ClusterConfig,
        *,
        principal: str = "client",
        timeout: float | None = None,
        text: bool = False,
    ) -> None:
        cfg = config if isinstance(config, ClusterConfig) else load_config(config)
        self._options = {"principal": principal, "timeout": timeout, "text": text}
        self._cfg = cfg
        self._kv: KV | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bft-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the constructor, or lost on close
            self._failure = exc
        finally:
            self._kv = None
            self._ready.set()

    async def _serve(self) -> None:
        async with connect(self._cfg, **self._options) as kv:  # type: ignore[arg-type]
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            self._kv = kv
            self._ready.set()
            await self._stop.wait()

    def _run(self, method: Callable[..., Any], *args: Any, timeout: float | None) -> Any:
        token = self._token
        if self._kv is None or token is None:
            raise ClientError("the client is closed")
        try:
            return trio.from_thread.run(lambda: method(*args, timeout=timeout), trio_token=token)
        except trio.RunFinishedError:
            raise ClientError("the client is closed") from None
        except trio.Cancelled:  # closed while this call was in flight
            raise ClientError("the client was closed during the call") from None

    def put(self, key: Data, value: Data, *, timeout: float | None = None) -> None:
        """See `KV.put`."""
        return self._run(self._method("put"), key, value, timeout=timeout)

    def get(self, key: Data, *, timeout: float | None = None) -> Data | None:
        """See `KV.get`."""
        return self._run(self._method("get"), key, timeout=timeout)

    def delete(self, key: Data, *, timeout: float | None = None) -> bool:
        """See `KV.delete`."""
        return self._run(self._method("delete"), key, timeout=timeout)

    def cas(
        self, key: Data, expected: Data | None, new: Data, *, timeout: float | None = None
    ) -> bool:
        """See `KV.cas`."""
        return self._run(self._method("cas"), key, expected, new, timeout=timeout)

    def _method(self, name: str) -> Callable[..., Any]:
        kv = self._kv
        if kv is None:
            raise ClientError("the client is closed")
        return getattr(kv, name)

    def close(self) -> None:
        """Stop the background thread (idempotent); calls in flight are cancelled."""
        token, stop = self._token, self._stop
        self._kv = None
        if token is not None and stop is not None and self._thread.is_alive():
            try:
                trio.from_thread.run_sync(stop.set, trio_token=token)
            except trio.RunFinishedError:
                pass
        self._thread.join(CLOSE_GRACE_S)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
