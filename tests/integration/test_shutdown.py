"""SIGTERM stops a replica within its shutdown grace, even with a peer that never answers.

Replica 3 is frozen with SIGSTOP: its sockets accept at the kernel level and then nothing
is read, the slowest peer there is. Client writes keep the others sending to it, then
replica 1 gets SIGTERM and must be gone within ``shutdown_grace_s`` (plus the slack of a
loaded box), having said so in its log.
"""

from __future__ import annotations

import os
import signal

import pytest
import trio

from node.client import connect
from node.shell.lifetime import SHUTDOWN_GRACE_S

pytestmark = pytest.mark.slow

SLACK_S = 1.5


async def test_sigterm_exits_within_the_grace_despite_a_frozen_peer(cluster) -> None:
    frozen, target = cluster.replicas[3], cluster.replicas[1]
    assert frozen.pid is not None and target.pid is not None and target.done is not None
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        for i in range(20):  # a fresh connection each time, as separate clients would
            async with connect(cluster.cfg, timeout=5.0) as kv:
                await kv.put(f"k{i}", "v")
        await trio.sleep(1.0)  # the frozen peer's sends time out, its circuit opens
        started = trio.current_time()
        os.kill(target.pid, signal.SIGTERM)
        with trio.fail_after(SHUTDOWN_GRACE_S + 10):
            await target.done.wait()
        elapsed = trio.current_time() - started
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    log = target.log_path.read_text()
    assert "event=shutdown replica=1 signal=SIGTERM" in log
    print(f"stopped in {elapsed:.2f} s; forced: {'shutdown_forced' in log}")
    assert elapsed <= SHUTDOWN_GRACE_S + SLACK_S, f"took {elapsed:.1f} s"
    assert "Traceback" not in log
