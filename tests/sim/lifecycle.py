"""What happens to a simulated replica's process: crashes (at once, between a round's
persist and its sends, or right after it holds 2f commits of a batch it has not
executed), restarts from its durable store through the real `recover`, partitions and GST,
and the shell's state-fetch task. Each function acts on a `Simulation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.recovery import recover
from node.protocol.messages import Commit, StateRequest

from .cast import verify_cache
from .invariants import RecordingApp
from .payloads import Control, FetchRetry

if TYPE_CHECKING:
    from .harness import Simulation

FETCH_RETRY_S = 0.3


def fetch(sim: Simulation, r: int, attempt: int, incarnation: int) -> None:
    """The shell's fetch task: ask one peer after another (what each executed after
    this replica's last executed) until the core stops fetching, giving up after two
    rounds of the peers (the core asks again at its next status tick if still behind)."""
    core = sim.cores[r]
    if core is None or incarnation != sim.incarnation[r]:
        return
    who = sim.identity[r]
    peers = [p for p in range(sim.params.n) if p != who]
    if core.fetching is None or attempt >= 2 * len(peers):
        sim.fetch_chain.pop(r, None)
        return
    peer = peers[(who + attempt) % len(peers)]
    sim.send(r, peer, StateRequest(core.last_executed, who))
    sim.queue.schedule(FETCH_RETRY_S, FetchRetry(r, attempt + 1, incarnation))


def control(sim: Simulation, ev: Control) -> None:
    now = sim.queue.now
    sim.trace.add(now, ev.what, "sim", None, str(ev.arg) if ev.arg is not None else "")
    if ev.what == "crash":
        crash(sim, ev.arg)
    elif ev.what == "crash_mid_round":
        sim.crash_mid_round.add(ev.arg)
    elif ev.what == "crash_on_commit":
        sim.crash_on_commit.add(ev.arg)
    elif ev.what == "restart":
        restart(sim, ev.arg)
    elif ev.what == "partition":
        sim.net.partition(ev.arg)
    elif ev.what == "heal":
        sim.net.heal()
    elif ev.what == "gst":
        sim.net.stabilise()


def maybe_crash_on_commit(sim: Simulation, r: int, commit: Commit) -> None:
    """Crash `r` right after it stored the 2f-th commit of a batch it has not executed."""
    core = sim.cores[r]
    held = sim.checks.monitor.commits_held(r, commit.view, commit.seq, commit.digest)
    if core is not None and core.last_executed < commit.seq and held == 2 * sim.params.f:
        sim.crash_on_commit.discard(r)
        sim.trace.add(sim.queue.now, "crash", r, None, f"2f commits for seq {commit.seq}")
        crash(sim, r)


def crash(sim: Simulation, r: int) -> None:
    core = sim.cores[r]
    if core is None:
        return
    sim.executed_at_crash[r] = core.last_executed
    sim.cores[r] = None
    sim.incarnation[r] += 1
    for key in [k for k in sim.timers if k[0] == r]:
        sim.cancel_timer(*key)


def restart(sim: Simulation, r: int) -> None:
    sim.crash_mid_round.discard(r)
    sim.crash_on_commit.discard(r)
    if sim.cores[r] is not None:
        crash(sim, r)
    stored = sim.stores[r].load()
    core, actions = recover(
        sim.cfg,
        sim.identity[r],
        sim.signers[sim.identity[r]],
        sim.replica_keys,
        sim.client_keys,
        RecordingApp(r, sim.ledger),
        stored=stored,
        verify_cache=verify_cache(sim.params.n),
        rules=sim.rules,
    )
    sim.cores[r] = core
    sim.restarts += 1
    sim.ledger.last_executed.pop(r, None)
    sim.cause = "restart"
    sim.apply(r, actions)
    sim.cause = None
    before = sim.executed_at_crash.get(r, 0)
    if r in sim.ledger.correct and core.last_executed < before:
        sim.ledger.fail(
            "recovery",
            f"replica {r} executed up to {before} before its crash but only "
            f"{core.last_executed} after restarting (its log should prove the rest)",
        )
