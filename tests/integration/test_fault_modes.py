"""Each `--fault` mode on one replica (equivocate and silent on the primary): the three
correct replicas stay live and agree, and the faulty one reports its mode."""

from __future__ import annotations

import pytest

from node.cli.cluster.launcher import LocalCluster
from node.client.load import run_load
from tests.integration.harness import fast_cluster_dir, metric, status, wait_for

pytestmark = pytest.mark.slow

CASES = [
    (0, "equivocate"),
    (0, "silent"),
    (3, "delay:200"),
    (3, "drop:0.3"),
    (3, "bad-signature"),
    (3, "crash-after:2"),
]


@pytest.mark.parametrize(("faulty", "mode"), CASES, ids=[m for _, m in CASES])
async def test_correct_replicas_stay_live_and_agree(tmp_path, faulty, mode):
    fast_cluster_dir(tmp_path / "c")
    async with LocalCluster(tmp_path / "c", grace_s=3.0, control=False) as lc:
        await lc.start(4, faults={faulty: mode})
        crashes = mode.startswith("crash")
        await lc.wait_healthy(30, [i for i in range(4) if i != faulty or not crashes])
        if not mode.startswith("crash"):
            st = await status(lc, faulty)
            assert st["fault"] == mode
            assert (
                await metric(lc, faulty, "bft_replica_info", f'fault="{mode}",id="{faulty}"') == 1.0
            )
        summary = await run_load(lc.cfg, 4, 8.0, request_timeout_s=5.0)
        assert summary["ops"] >= 20, summary
        correct = [i for i in range(4) if i != faulty]

        async def agree():
            got = [await status(lc, i) for i in correct]
            if any(s is None for s in got):
                return None
            marks = {(s["last_executed"], s["state_digest"]) for s in got}
            return len(marks) == 1 and got[0]["last_executed"] > 0

        await wait_for(agree, 20, f"correct replicas to agree with {mode} on {faulty}")
        if mode == "bad-signature":
            assert (
                await metric(
                    lc, 0, "bft_invalid_messages_total", f'peer="{faulty}",reason="bad_signature"'
                )
                >= 1
            )
        if mode in ("equivocate", "silent"):
            st = await status(lc, correct[0])
            assert st["view"] >= 1, "the faulty primary should have been replaced"
        if mode == "silent":
            # heartbeats are answered by the peer's shell: silence trips the breaker
            async def tripped():
                st = await status(lc, correct[0])
                return st and st["peers"][str(faulty)]["trips"] >= 1

            await wait_for(tripped, 10, "the others' circuit to the silent replica to trip")
        if mode.startswith("delay"):
            # the heartbeat round trip includes the delay, so the slow peer shows to the
            # breaker: its heartbeats time out, or its adaptive deadline grows above
            # every healthy peer's (whichever the mix of fast sends and slow heartbeats
            # in its latency window gives)
            peers = (await status(lc, correct[0]))["peers"]
            healthy = [p["timeout_ms"] for name, p in peers.items() if name != str(faulty)]
            timeouts = await metric(
                lc,
                correct[0],
                "circuit_breaker_latency_seconds_count",
                f'outcome="timeout",peer="{faulty}"',
            )
            assert (timeouts or 0) >= 3 or peers[str(faulty)]["timeout_ms"] > max(healthy), (
                timeouts,
                peers,
            )
