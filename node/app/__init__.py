"""The replicated state machine: the ``App`` protocol and the ``KVStore`` it runs."""

from node.app.base import App
from node.app.kv import (
    KVStore,
    decode_op,
    decode_result,
    encode_op,
    op_cas,
    op_delete,
    op_get,
    op_put,
)

__all__ = [
    "App",
    "KVStore",
    "decode_op",
    "decode_result",
    "encode_op",
    "op_cas",
    "op_delete",
    "op_get",
    "op_put",
]
