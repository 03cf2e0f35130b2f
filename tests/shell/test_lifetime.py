"""The shutdown grace is enforced: a replica whose tasks will not unwind is ended anyway.

Each case runs ``run_until_signal`` in a child Python process (the forced exit ends the
whole process) with a stand-in replica, sends it SIGTERM once it is running, and checks
how it ended and what it logged.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

CHILD = """
import logging, sys, trio
from node.shell.lifetime import run_until_signal

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

class Stuck:
    id = 7
    stuck = {stuck}

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        print("running", flush=True)
        with trio.CancelScope(shield=self.stuck):
            await trio.sleep(60)

    def stop(self):
        print("stop", flush=True)

trio.run(run_until_signal, Stuck(), 0.5)
print("exited cleanly", flush=True)
"""


def run_child(stuck: bool) -> tuple[int, str, str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(stuck=stuck)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        return proc.returncode, out, err, time.monotonic() - started
    finally:
        proc.kill()


@pytest.mark.parametrize("stuck", [False, True])
def test_sigterm_stops_within_the_grace(stuck: bool) -> None:
    code, out, err, elapsed = run_child(stuck)
    assert "event=shutdown replica=7 signal=SIGTERM grace_s=0.5" in err
    assert "stop" in out
    assert elapsed < 5.0
    if stuck:
        assert code == 1 and "exited cleanly" not in out
        assert "event=shutdown_forced replica=7 grace_s=0.5" in err
        assert elapsed >= 0.5
    else:
        assert code == 0 and "exited cleanly" in out
        assert "shutdown_forced" not in err
