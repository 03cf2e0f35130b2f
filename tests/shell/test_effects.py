"""The shell performs every note the core can return: `Effects` has a handler for each
type in `node.consensus.ready.Note` and no other."""

from __future__ import annotations

import typing
from pathlib import Path

from node.config import init_cluster, load_config, load_private_key
from node.consensus.ready import Note
from node.shell.replica import Replica


def test_every_note_type_has_a_handler(tmp_path: Path) -> None:
    path = init_cluster(tmp_path / "cluster", base_port=17000, http_base_port=17100)
    cfg = load_config(path)
    replica = Replica(cfg, 0, load_private_key(cfg.replica_key_path(0)), tmp_path / "data")
    try:
        assert set(replica.effects._notes) == set(typing.get_args(Note))
    finally:
        replica.storage.close()
