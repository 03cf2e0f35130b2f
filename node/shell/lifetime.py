"""Running one replica until SIGINT or SIGTERM, and making it stop within a grace period.

On the first signal the replica's nursery is cancelled: every task unwinds at its next
checkpoint, links close, the storage closes. Trio cannot cancel code that is blocked
outside a checkpoint (a write stuck on a dying disk, a C call), so the same signal also
arms a watchdog thread: if the process is still there ``grace_s`` seconds later, it logs
``event=shutdown_forced`` and ends the process at once. That loses nothing acknowledged:
every record a reply or a vote depended on was durable before it was sent, and SQLite's
WAL survives an abrupt exit as it survives a crash.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Protocol

import trio

SHUTDOWN_GRACE_S = 3.0
FORCED_EXIT_CODE = 1

log = logging.getLogger("bft.replica")


class Runnable(Protocol):
    id: int

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def stop(self) -> None: ...


async def run_until_signal(replica: Runnable, grace_s: float = SHUTDOWN_GRACE_S) -> None:
    """Run ``replica`` until SIGINT/SIGTERM, then stop it within ``grace_s`` seconds."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(replica.run)
            async for signum in signals:
                log.info(
                    "event=shutdown replica=%d signal=%s grace_s=%.1f",
                    replica.id,
                    signal.Signals(signum).name,
                    grace_s,
                )
                arm_watchdog(replica.id, grace_s)
                replica.stop()
                nursery.cancel_scope.cancel()
                return


def arm_watchdog(replica_id: int, grace_s: float) -> threading.Timer:
    """End the process in ``grace_s`` seconds unless it has exited by then."""
    timer = threading.Timer(grace_s, _force_exit, args=(replica_id, grace_s))
    timer.daemon = True
    timer.start()
    return timer


def _force_exit(replica_id: int, grace_s: float) -> None:
    log.warning(
        "event=shutdown_forced replica=%d grace_s=%.1f reason=tasks_still_running",
        replica_id,
        grace_s,
    )
    logging.shutdown()
    os._exit(FORCED_EXIT_CODE)
