"""When a schedule may stop: every correct replica up, executed as far as the others and
in the same view (or waiting in a view change to the next one), and what to report
when they still differ after the clients are done; then, once they agree, whether every
write a client saw accepted is in their committed state (`lost_write`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .harness import Simulation

#: after the clients are done (and the network stable), every correct replica must reach
#: the same last executed sequence number within this many virtual seconds
CONVERGE_S = 10.0


def settled(sim: Simulation, finished_at: float) -> bool:
    """After the clients are done: True once the correct replicas agree and hold every
    accepted write (an accepted write may still ride a view change to its commit), or
    when ``CONVERGE_S`` ran out (then a ``convergence`` or ``durability`` violation)."""
    late = sim.queue.now > max(finished_at, sim.params.settle_time) + CONVERGE_S
    if not converged(sim):
        if late:
            sim.ledger.fail("convergence", divergence(sim))
        return late
    problem = lost_write(sim)
    if problem is not None and late:
        sim.ledger.fail("durability", problem)
    return problem is None or late


def converged(sim: Simulation) -> bool:
    """Every correct replica is up, has executed as far as the others (nothing
    tentative) and is in the
    view the others are in, or waits in a view change to the next one (PBFT never
    lets a replica back out of a view change it announced; the others find it there
    at their next view change)."""
    cores = [c for r, c in enumerate(sim.cores) if r in sim.ledger.correct]
    if any(c is None for c in cores) or len({c.last_executed for c in cores}) != 1:
        return False
    if any(c.tentative_seq is not None for c in cores):
        return False  # a batch ran before it committed: it must commit (or be undone)
    settled = [c.view for c in cores if not c.in_view_change]
    if not settled:
        return False
    view = max(settled)
    return all(
        (c.view == view and not c.in_view_change)
        or (c.in_view_change and c.view_change_target == view + 1)
        for c in cores
    )


def divergence(sim: Simulation) -> str:
    parts = []
    for r in sorted(sim.ledger.correct):
        core = sim.cores[r]
        if core is None:
            parts.append(f"{r}: down")
        else:
            vc = f" (changing to {core.view_change_target})" if core.in_view_change else ""
            parts.append(f"{r}: executed {core.last_executed} view {core.view}{vc}")
    return (
        f"{CONVERGE_S:g}s after the clients finished the correct replicas still "
        "differ: " + ", ".join(parts)
    )


def lost_write(sim: Simulation) -> str | None:
    """Why the committed state of a correct replica misses what a client saw done, or
    None. Every session knows what its own keys must hold after its accepted operations
    (a write accepted on tentative replies included): a batch that was undone and never
    committed, yet accepted, shows here even if the session never read the key again."""
    for r in sorted(sim.ledger.correct):
        core = sim.cores[r]
        if core is None:
            continue
        contents = core.app.state().contents
        for client in sim.clients:
            for key, value in client.settled_keys().items():
                if contents.get(key) != value:
                    return (
                        f"replica {r} at seq {core.last_executed}: {client.session}'s key "
                        f"{key!r:.40} holds {contents.get(key)!r:.30}, the session saw "
                        f"{value!r:.30} accepted"
                    )
    return None
