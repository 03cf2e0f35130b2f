"""A whole state transfer of 10^4, 10^5 and 10^6 keys of 100 bytes, end to end.

The serving side holds a real `KVStore` with the keys and a stable checkpoint of it
(certified by 2f + 1 signed checkpoint votes); the fetching side is a fresh
`ReplicaCore`. Timed from the moment the server encodes its `StateResponse` to the
moment the fetching core has checked the proof, installed the snapshot and checked its
digest, with the message crossing a real authenticated peer link on 127.0.0.1 (a
`PeerLink` to a `Listener`, fragments of `max_peer_frame`, reassembly), plus writing the
installed snapshot to disk with fsync as the replica's storage does. Both ends run in one
process per size (one core: a pessimistic figure, the two sides would overlap on two
hosts). Writes `benches/results/state_transfer.json` and `.md`.

    python benches/state_transfer.py [--sizes 10000,100000,1000000] [--json]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import sizes_main  # noqa: E402

VALUE = b"v" * 100
HEADERS = ("keys", "snapshot MiB", "encode s", "wire s", "install s", "persist s", "total s")
LIMIT_S = 300


def _seed(i: int) -> bytes:
    return hashlib.sha256(b"bench-transfer-%d" % i).digest()


def _filled(keys: int):
    from node.app.kv import KVStore, op_put

    store = KVStore()
    for i in range(keys):
        store.apply(op_put(f"key-{i:010d}".encode(), VALUE))
    return store


async def transfer(keys: int) -> dict[str, Any]:
    import trio

    from node.app.kv import KVStore
    from node.consensus.clients import ClientTable, encode_snapshot, snapshot_digest
    from node.consensus.core import ReplicaCore
    from node.consensus.events import MessageReceived, StateTransferred
    from node.consensus.params import CoreConfig
    from node.protocol import codec
    from node.protocol.crypto import Signer, sign_message
    from node.protocol.messages import Checkpoint, StateResponse
    from transport import Identity, Listener, PeerLink

    cfg = CoreConfig()
    signers = [Signer(_seed(i)) for i in range(cfg.n)]
    public = {i: s.public_key for i, s in enumerate(signers)}
    snapshot = encode_snapshot(_filled(keys).snapshot(), ClientTable())
    seq, digest = cfg.checkpoint_interval, snapshot_digest(snapshot)
    proof = tuple(sign_message(Checkpoint(seq, digest, i), signers[i]) for i in range(3))
    fetcher = ReplicaCore(cfg, 1, signers[1], public, {}, KVStore())
    arrived: list[bytes] = []
    got = trio.Event()

    async def on_peer(_name: str, frame: bytes) -> None:
        arrived.append(frame)
        got.set()

    listener = Listener(Identity("1", _seed(1)), peer_keys={"0": public[0]}, on_peer_frame=on_peer)
    out: dict[str, Any] = {"keys": keys, "snapshot_mib": round(len(snapshot) / 2**20, 1)}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(listener.serve)
        link = PeerLink(Identity("0", _seed(0)), "1", public[1], "127.0.0.1", port)
        await nursery.start(link.run)
        with trio.fail_after(10):
            await link.wait_connected()
        began = time.perf_counter()
        wire = codec.encode(StateResponse(seq, snapshot, proof, 0, ()))
        encoded = time.perf_counter()
        await link.send(wire)
        with trio.fail_after(LIMIT_S):
            await got.wait()
        crossed = time.perf_counter()
        actions = fetcher.handle(MessageReceived(0, codec.decode(arrived[0])))
        assert any(type(a) is StateTransferred for a in actions), actions
        assert fetcher.last_executed == seq and len(fetcher.app) == keys
        installed = time.perf_counter()
        _persist(snapshot)
        done = time.perf_counter()
        nursery.cancel_scope.cancel()
    out.update(
        encode_s=round(encoded - began, 2),
        wire_s=round(crossed - encoded, 2),
        install_s=round(installed - crossed, 2),
        persist_s=round(done - installed, 2),
        total_s=round(done - began, 2),
    )
    return out


def _child(keys: int) -> dict[str, Any]:
    import trio

    return trio.run(transfer, keys)


def _persist(snapshot: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=Path(__file__).parent / "results", delete=True) as f:
        f.write(snapshot)
        f.flush()
        os.fsync(f.fileno())


def main() -> None:
    sizes_main(
        __doc__, __file__, "state_transfer", HEADERS, _child, {"value_bytes": len(VALUE)}, "total_s"
    )


if __name__ == "__main__":
    main()
