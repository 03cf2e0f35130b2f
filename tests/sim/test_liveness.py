"""Named scenarios: the faults PBFT must recover from, and one it need not survive.

Every schedule of the default run already checks liveness after GST; these scenarios pin
down that the recovery paths really run (view change, restart from the durable store,
state transfer) and that the liveness check itself can fail.
"""

from __future__ import annotations

from typing import Any

import attrs

from .harness import Simulation
from .params import Crash, Partition, ScheduleParams
from .result import SimResult


def scenario(n: int, seed: int = 0, **changes: Any) -> Simulation:
    """A calm schedule (no drops, faults or partitions) with the given changes."""
    base = ScheduleParams.from_seed(seed, n, byzantine_count=0, crash_p=0.0, max_drop_p=0.0)
    calm = {"partitions": (), "crashes": (), "gst": 0.5, "clients": 2, "requests_per_client": 3}
    calm["client_start"] = (0.0, 0.05)
    calm.update(changes)
    return Simulation(attrs.evolve(base, **calm))


def run_ok(sim: Simulation) -> SimResult:
    result = sim.run()
    assert result.ok, result.report()
    expected = sim.params.clients * sim.params.requests_per_client
    assert result.completed == expected
    return result


def test_silent_primary_is_voted_out() -> None:
    result = run_ok(scenario(4, byzantine={0: "silent"}))
    assert result.view_changes > 0


def test_two_silent_primaries_in_a_row_with_n7() -> None:
    sim = scenario(7, byzantine={0: "silent", 1: "silent"})
    run_ok(sim)
    assert all(core is not None and core.view >= 2 for core in sim.cores[2:])


def test_crashed_primary_recovers_from_its_durable_store() -> None:
    sim = scenario(4, crashes=(Crash(0, 0.15, 1.5),), gst=1.5, requests_per_client=4)
    result = run_ok(sim)
    assert result.restarts == 1
    assert sim.stores[0].transactions > 0


def test_partitioned_replica_catches_up_by_state_transfer() -> None:
    sim = scenario(
        4,
        partitions=(Partition(0.0, 1.5, ((0, 1, 2), (3,))),),
        gst=1.5,
        clients=3,
        requests_per_client=4,
        client_start=(0.0, 0.0, 2.0),
        checkpoint_interval=2,
        watermark_window=4,
        batch_max=1,
    )
    result = run_ok(sim)
    assert result.state_transfers > 0
    lagger = sim.cores[3]
    assert lagger is not None and lagger.stable_checkpoint >= 2


def test_more_than_f_faults_is_reported_as_a_liveness_failure() -> None:
    sim = scenario(4, byzantine={0: "silent", 1: "silent"}, liveness_bound_s=10.0)
    result = sim.run()
    assert [v.invariant for v in result.violations] == ["liveness"], result.report()
