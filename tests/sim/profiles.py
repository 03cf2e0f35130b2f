"""Schedule profiles beyond the default mix: the ways a replica falls behind and must come
back by itself (restarts with a long log, long partitions, missed view changes) and
overload. Each is a seed-determined `ScheduleParams`, so a seed alone replays it:
`python -m tests.sim.replay SEED --n 4 --profile rejoin`.

- `restart`: a correct replica (the primary one time in three) crashes after many
  batches (half the time just as it holds 2f of a batch's commits, the last one still
  on its way), is down long enough to miss checkpoints, and restarts; sometimes twice.
- `partition`: a correct replica is cut off for several checkpoint intervals while the
  others go on; after the heal, sometimes the primary is cut off next, so the first one
  is needed for the quorum of the view change.
- `missed_views` (n >= 7): a correct replica is cut off while two primaries in a row
  crash, so it misses two view changes and must learn the current view from its peers.
- `overload`: many clients at once on a slow network with small batches, so requests
  wait in queues longer than the view-change timeout.

Every profile keeps the default invariants and adds the convergence check (harness.py):
after the network is stable and the clients are done, every correct replica executes as
far as the others within `CONVERGE_S`.
"""

from __future__ import annotations

import attrs

from .network import NetworkParams
from .params import Crash, Partition, ScheduleParams, schedule_rng

REJOIN_KINDS = ("restart", "partition", "missed_views", "overload")


def rejoin_params(seed: int, n: int) -> ScheduleParams:
    rng = schedule_rng(seed, n, "rejoin")
    kinds = [k for k in REJOIN_KINDS if k != "missed_views" or n >= 7]
    kind = rng.choice(kinds)
    base = ScheduleParams.from_seed(
        seed, n, byzantine_count=0 if kind != "overload" else None, crash_p=0.0, max_drop_p=0.05
    )
    common = dict(
        partitions=(),
        crashes=(),
        clients=rng.randint(2, 4),
        requests_per_client=rng.randint(4, 10),
        client_start=(),
        checkpoint_interval=rng.choice((2, 3)),
        batch_max=rng.choice((1, 2)),
        liveness_bound_s=90.0,
        max_steps=400_000,
    )
    common["watermark_window"] = common["checkpoint_interval"] * rng.choice((2, 3))
    params = attrs.evolve(base, **common)
    make = {
        "restart": _restart,
        "partition": _partition,
        "missed_views": _missed_views,
        "overload": _overload,
    }[kind]
    params = make(params, rng)
    return attrs.evolve(
        params, client_start=tuple(rng.uniform(0.0, 0.3) for _ in range(params.clients))
    )


def _correct_victim(p: ScheduleParams, rng, primary_p: float = 1 / 3) -> int:
    correct = p.correct
    if 0 in correct and rng.random() < primary_p:
        return 0
    return rng.choice([r for r in correct if r != 0] or correct)


def _restart(p: ScheduleParams, rng) -> ScheduleParams:
    victim = _correct_victim(p, rng)
    at = rng.uniform(0.8, 2.0)
    # half the time at the worst moment: 2f commits of a batch stored, the last one not
    crashes = [Crash(victim, at, at + rng.uniform(0.8, 3.0), on_commit=rng.random() < 0.5)]
    if rng.random() < 0.4:  # a second round, maybe of another replica
        again = _correct_victim(p, rng)
        later = crashes[0].restart_at + rng.uniform(0.5, 1.5)
        crashes.append(Crash(again, later, later + rng.uniform(0.5, 2.0)))
    gst = max(c.restart_at for c in crashes) + rng.uniform(0.0, 1.0)
    return attrs.evolve(p, crashes=tuple(crashes), gst=gst)


def _isolate(n: int, victim: int, at: float, until: float) -> Partition:
    return Partition(at, until, (tuple(r for r in range(n) if r != victim), (victim,)))


def _partition(p: ScheduleParams, rng) -> ScheduleParams:
    victim = _correct_victim(p, rng, primary_p=0.0)
    at = rng.uniform(0.1, 0.8)
    heal = at + rng.uniform(1.5, 4.0)
    parts = [_isolate(p.n, victim, at, heal)]
    if rng.random() < 0.5:  # then the primary alone, so the first one is needed
        start = heal + rng.uniform(0.3, 1.0)
        parts.append(_isolate(p.n, 0, start, start + rng.uniform(1.0, 2.5)))
    return attrs.evolve(p, partitions=tuple(parts), gst=parts[-1].until + 0.01)


def _missed_views(p: ScheduleParams, rng) -> ScheduleParams:
    victim = rng.choice(range(2, p.n))
    at = rng.uniform(0.1, 0.5)
    first = at + rng.uniform(0.3, 0.8)  # primary 0 crashes: view 1
    back = first + rng.uniform(2.0, 3.0)
    second = back + rng.uniform(0.5, 1.0)  # then primary 1: view 2
    crashes = (Crash(0, first, back), Crash(1, second, second + rng.uniform(1.0, 2.0)))
    heal = second + rng.uniform(2.0, 4.0)
    return attrs.evolve(
        p,
        crashes=crashes,
        partitions=(_isolate(p.n, victim, at, heal),),
        gst=max(heal, crashes[-1].restart_at) + 0.01,
        requests_per_client=rng.randint(8, 14),
    )


def _overload(p: ScheduleParams, rng) -> ScheduleParams:
    network = NetworkParams(
        drop_p=0.0, dup_p=0.0, min_delay_s=0.005, max_delay_s=0.05, slow_p=0.1, slow_delay_s=0.5
    )
    return attrs.evolve(
        p,
        clients=rng.randint(8, 14),
        requests_per_client=rng.randint(3, 8),
        batch_max=1,
        view_change_timeout_s=0.5,
        network=network,
        gst=rng.uniform(2.0, 4.0),
    )
