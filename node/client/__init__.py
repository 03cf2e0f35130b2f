"""The client side of bft-node.

The public API: ``connect`` (Trio: ``async with node.client.connect(PATH) as kv``) and
``Client`` (blocking, thread-safe: ``with node.client.Client(PATH) as kv``), both with
``put``, ``get``, ``delete`` and ``cas``, and the errors they raise. Below them: the
connection pool (``pool``), the reply rule (``decide``), the request limits (``limits``)
and the load generator behind ``bft-node load`` (``load``). See docs/client.md.
"""

from node.client.api import KV, connect
from node.client.blocking import Client
from node.client.errors import (
    ClientError,
    InvalidRequest,
    QuorumUnavailable,
    Refused,
    RequestTimeout,
)

__all__ = [
    "KV",
    "Client",
    "ClientError",
    "InvalidRequest",
    "QuorumUnavailable",
    "Refused",
    "RequestTimeout",
    "connect",
]
