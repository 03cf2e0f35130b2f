"""How the cost grows with the state: a replica's memory, checkpoint and install times
for 10^4, 10^5 and 10^6 keys of 100 bytes.

Each size runs in a child process of its own (so the memory figure is that state's):
it fills a real `KVStore` through `apply` (the path executed puts take), then measures
the resident memory the store added, the checkpoint a replica takes (`encode_snapshot`
of the app snapshot plus the client table, and its digest), and what a replica that
fetches that checkpoint does before it can execute again (`decode_snapshot`, `restore`
into a fresh store, the digest check). The network part of a state transfer is not in
these figures (benches/recovery.py times whole transfers between processes).

Prints a table, writes `benches/results/state_size.json` and `state_size.md`.

    python benches/state_size.py [--sizes 10000,100000,1000000] [--json]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, sizes_main  # noqa: E402

VALUE = b"v" * 100
HEADERS = (
    "keys",
    "memory MiB",
    "bytes/key",
    "snapshot MiB",
    "checkpoint s",
    "install s",
)


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(keys: int) -> dict[str, Any]:
    """Build `keys` keys, then time a checkpoint and its installation elsewhere."""
    sys.path.insert(0, str(ROOT))
    from node.app.kv import KVStore, op_put
    from node.consensus.clients import (
        ClientTable,
        decode_snapshot,
        encode_snapshot,
        snapshot_digest,
    )

    before = rss_kib()
    store = KVStore()
    for i in range(keys):
        store.apply(op_put(f"key-{i:010d}".encode(), VALUE))
    added_kib = rss_kib() - before
    started = time.perf_counter()
    snapshot = encode_snapshot(store.snapshot(), ClientTable())
    digest = snapshot_digest(snapshot)
    checkpoint_s = time.perf_counter() - started
    started = time.perf_counter()
    app_snapshot, _clients = decode_snapshot(snapshot)
    fresh = KVStore()
    fresh.restore(app_snapshot)
    assert snapshot_digest(snapshot) == digest and fresh.digest() == store.digest()
    install_s = time.perf_counter() - started
    return {
        "keys": keys,
        "memory_mib": round(added_kib / 1024, 1),
        "bytes_per_key": round(added_kib * 1024 / keys),
        "snapshot_mib": round(len(snapshot) / 2**20, 1),
        "checkpoint_s": round(checkpoint_s, 3),
        "install_s": round(install_s, 3),
    }


def main() -> None:
    sizes_main(
        __doc__, __file__, "state_size", HEADERS, child, {"value_bytes": len(VALUE)}, "memory_mib"
    )


if __name__ == "__main__":
    main()
