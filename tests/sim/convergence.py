"""When a schedule may stop: every correct replica up, executed as far as the others and
in the same view (or waiting in a view change to the next one), and what to report
when they still differ after the clients are done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .harness import Simulation

#: after the clients are done (and the network stable), every correct replica must reach
#: the same last executed sequence number within this many virtual seconds
CONVERGE_S = 10.0


def converged(sim: Simulation) -> bool:
    """Every correct replica is up, has executed as far as the others and is in the
    view the others are in, or waits in a view change to the next one (PBFT never
    lets a replica back out of a view change it announced; the others find it there
    at their next view change)."""
    cores = [c for r, c in enumerate(sim.cores) if r in sim.ledger.correct]
    if any(c is None for c in cores) or len({c.last_executed for c in cores}) != 1:
        return False
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
