"""What a received commit costs the core, counted on its MAC against on its signature.

One replica core (n = 4 by default, `--nodes`) receives the commits of the other n - 1
replicas for `--batches` slots, each a distinct signed and tagged `Commit`, once with
`[consensus] commit_authenticators` on (the tag for this replica is checked) and once off
(every signature verified, as before); settings alternate over `--rounds`, a fresh core
each time (no verified-signature cache carried over). CPU only, no I/O. The table gives
the median µs per commit received and the saving per batch and per request at the
batch sizes of the cluster benches. Writes `benches/results/commit_auth.json` and `.md`.

    python benches/commit_auth.py [--nodes N] [--batches B] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import report  # noqa: E402

from node.app.kv import KVStore  # noqa: E402
from node.consensus.core import ReplicaCore  # noqa: E402
from node.consensus.events import MessageReceived  # noqa: E402
from node.consensus.params import CoreConfig  # noqa: E402
from node.consensus.vote_auth import VoteAuth  # noqa: E402
from node.protocol.crypto import Signer, sign_message  # noqa: E402
from node.protocol.messages import Commit  # noqa: E402

HEADERS = ("figure", "MAC (on)", "signature (off)", "off / on")
#: requests per batch: a single client's, and the peak's at the default batch_max
BATCH_SIZES = (1, 64)


def _signers(n: int) -> list[Signer]:
    return [Signer(hashlib.sha256(b"bench-replica-%d" % i).digest()) for i in range(n)]


def _commits(signers: list[Signer], batches: int) -> list[Commit]:
    n = len(signers)
    keys = {i: s.public_key for i, s in enumerate(signers)}
    out = []
    for sender in range(1, n):
        seal = VoteAuth(signers[sender], sender, keys, n).seal
        for seq in range(1, batches + 1):
            digest = hashlib.sha256(b"batch-%d" % seq).digest()
            out.append(seal(sign_message(Commit(0, seq, digest, sender), signers[sender])))
    return out


def one_run(signers: list[Signer], commits: list[Commit], on: bool, batches: int) -> float:
    """µs of CPU per commit handled by a fresh replica 0."""
    n = len(signers)
    f = (n - 1) // 3
    window = 2 * max(256, batches)
    cfg = CoreConfig(
        n=n,
        f=f,
        checkpoint_interval=window // 2,
        watermark_window=window,
        commit_authenticators=on,
    )
    keys = {i: s.public_key for i, s in enumerate(signers)}
    core = ReplicaCore(cfg, 0, signers[0], keys, {}, KVStore())
    events = [MessageReceived(c.sender, c) for c in commits]
    started = time.process_time()
    for event in events:
        core.handle(event)
    spent = time.process_time() - started
    assert core.commit_auth_counts["mac" if on else "signature"] in (0, len(commits))
    return 1e6 * spent / len(commits)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    signers = _signers(args.nodes)
    commits = _commits(signers, args.batches)
    runs: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(args.rounds):
        for setting in ("on", "off") if i % 2 == 0 else ("off", "on"):
            runs[setting].append(one_run(signers, commits, setting == "on", args.batches))
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    per_batch = (args.nodes - 1) * (off - on)  # commits each replica receives per batch
    return {
        "nodes": args.nodes,
        "batches": args.batches,
        "rounds": args.rounds,
        "runs": runs,
        "us_per_commit": {"on": round(on, 2), "off": round(off, 2)},
        "saved_us_per_batch_per_replica": round(per_batch, 1),
        "saved_us_per_request_all_replicas": {
            str(b): round(args.nodes * per_batch / b, 1) for b in BATCH_SIZES
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4, help="replicas (default 4)")
    parser.add_argument("--batches", type=int, default=300, help="slots (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    out = bench(args)
    on, off = out["us_per_commit"]["on"], out["us_per_commit"]["off"]
    rows = [["µs of core CPU per commit received", f"{on:.1f}", f"{off:.1f}", f"{off / on:.1f}"]]
    saved = out["saved_us_per_request_all_replicas"]
    for b in BATCH_SIZES:
        rows.append(
            [f"saved per request, all replicas, batch of {b}", f"{saved[str(b)]:.1f}", "", ""]
        )
    paths = report(
        "commit_auth", "Commits counted on their MAC or their signature", HEADERS, rows, out
    )
    for path in paths:
        print(f"wrote {path}")
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "runs"}))


if __name__ == "__main__":
    main()
