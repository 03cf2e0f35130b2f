"""Durable state of one replica (SQLite in WAL mode); see `node.storage.sqlite`."""

from node.storage.sqlite import LogRow, Storage, StorageError, Stored

__all__ = ["LogRow", "Storage", "StorageError", "Stored"]
