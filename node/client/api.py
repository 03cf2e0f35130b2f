"""The public, Trio-native client: ``async with node.client.connect(PATH) as kv`` opens
one connection pool to every replica of the cluster in ``PATH`` (a ``cluster.toml``) and
gives ``put``, ``get``, ``delete`` and ``cas`` on the replicated store.

Many tasks may call one ``KV`` at once: each call runs in a session of its own (PBFT
allows one outstanding request per client, so concurrent calls take idle sessions from a
free list, or a new one), and all sessions share the pool's connections and frames.

Every call has a deadline: the ``timeout`` argument, else ``[client] call_timeout_s``
from the config (30 s); an enclosing cancel scope (``with trio.fail_after(...)``) bounds
it as well. A call raises only the types of ``node.client.errors``: ``RequestTimeout``,
``Refused`` (with its ``reason``), ``QuorumUnavailable`` and ``InvalidRequest``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from node.app.kv import MAX_KEY, decode_result, encode_op
from node.client.errors import ClientError, InvalidRequest
from node.client.limits import as_bytes, check_fits, max_value
from node.client.pool import ClientPool, Session
from node.config import ClusterConfig, load_config
from transport import Network

__all__ = ["KV", "connect"]

Data = str | bytes
#: how long `connect` waits for links to f+1 replicas before it hands the client out
CONNECT_WAIT_S = 5.0


class KV:
    """The store's operations over one `ClientPool`; made by `connect`."""

    def __init__(self, pool: ClientPool, timeout_s: float | None = None, text: bool = False):
        self.pool = pool
        self.cfg = pool.cfg
        self.timeout_s = timeout_s or pool.cfg.section("client")["call_timeout_s"]
        self.text = text  # get returns str (UTF-8) rather than bytes
        self._idle: list[Session] = []
        #: the largest value (or cas expected + new) one call may carry
        self.max_value = max_value(pool.cfg, pool.principal)
        self.max_key = MAX_KEY

    async def put(self, key: Data, value: Data, *, timeout: float | None = None) -> None:
        """Write `value` under `key`; returns once f+1 replicas confirm it committed (or
        2f+1 executed it tentatively, which also survives any view change)."""
        k, v = self._key(key), as_bytes(value, "value", self.max_value)
        check_fits(self.cfg, self.pool.principal, k, len(v))
        self._expect(await self._call(encode_op("put", k, v), False, timeout), "ok")

    async def get(self, key: Data, *, timeout: float | None = None) -> Data | None:
        """The value under `key`, or None when absent: answered by 2f+1 matching replicas
        without ordering when they agree, else ordered like a write (linearizable)."""
        status, value = await self._call(encode_op("get", self._key(key)), True, timeout)
        if status == "absent":
            return None
        self._expect((status, value), "ok")
        return self._out(value or b"")

    async def delete(self, key: Data, *, timeout: float | None = None) -> bool:
        """Remove `key`; True if it was there."""
        status, value = await self._call(encode_op("delete", self._key(key)), False, timeout)
        if status == "absent":
            return False
        self._expect((status, value), "ok")
        return True

    async def cas(
        self, key: Data, expected: Data | None, new: Data, *, timeout: float | None = None
    ) -> bool:
        """Set `key` to `new` if its value is `expected` (None: if `key` is absent); True
        when it swapped, False when the value was something else."""
        k = self._key(key)
        e = None if expected is None else as_bytes(expected, "expected", self.max_value)
        n = as_bytes(new, "new", self.max_value)
        check_fits(self.cfg, self.pool.principal, k, len(n) + len(e or b""))
        status, value = await self._call(encode_op("cas", k, e, n), False, timeout)
        if status == "mismatch":
            return False
        self._expect((status, value), "ok")
        return True

    def _key(self, key: Data) -> bytes:
        return as_bytes(key, "key", MAX_KEY)

    def _out(self, value: bytes) -> Data:
        if not self.text:
            return value
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ClientError("the value is not UTF-8 text; connect with text=False") from None

    async def _call(self, op: bytes, read: bool, timeout: float | None) -> tuple[str, bytes | None]:
        session = self._idle.pop() if self._idle else Session(self.pool)
        try:
            run = session.query if read else session.invoke
            result = await run(op, timeout if timeout is not None else self.timeout_s)
        finally:
            self._idle.append(session)
        try:
            return decode_result(result)
        except ValueError:
            raise ClientError("f+1 replicas agreed on a result that is not one") from None

    @staticmethod
    def _expect(result: tuple[str, bytes | None], status: str) -> None:
        got, value = result
        if got == "error":
            raise InvalidRequest(f"the cluster refused the operation: {(value or b'').decode()}")
        if got != status:
            raise ClientError(f"unexpected result {got!r}")


@asynccontextmanager
async def connect(
    config: str | os.PathLike[str] | ClusterConfig,
    *,
    principal: str = "client",
    timeout: float | None = None,
    text: bool = False,
    network: Network | None = None,
) -> AsyncIterator[KV]:
    """Open a connection pool to the cluster of `config` (a path to ``cluster.toml``,
    or a loaded config) as `principal` (its key in ``keys/``); close it on exit.

    `timeout` is every call's default deadline in seconds (else ``[client]
    call_timeout_s``); `text=True` makes `get` return str. Waits up to a few seconds for
    links to f+1 replicas, then hands the client out anyway: calls made while too few
    replicas answer raise `RequestTimeout` at their deadline.
    """
    cfg = config if isinstance(config, ClusterConfig) else load_config(config)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    pool = ClientPool(cfg, principal, network=network)
    raised: BaseException | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with trio.move_on_after(CONNECT_WAIT_S):
            await pool.wait_connected(cfg.f + 1)
        try:
            yield KV(pool, timeout, text)
        except BaseException as exc:
            # carried out of the nursery by hand: what the caller's block raised reaches
            # the caller as itself, not wrapped in an exception group
            raised = exc
        finally:
            nursery.cancel_scope.cancel()
    if raised is not None:
        raise raised
