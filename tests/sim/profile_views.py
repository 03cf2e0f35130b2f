"""Schedule profile "views": a rule-breaking replica becomes the primary of a new view.

In the default mix a Byzantine replica rarely leads a view change: the primary of view 0
must fail first. Here replica 1 (the primary of view 1) is a `rule_breaker` (for n=7,
sometimes replica 2 as well), and the correct primary of view 0 crashes, or is cut off,
after the clients have started, so the view change to view 1 is led by the rule breaker
(its lying NewViews, nvlies.py, reach every replica before its real one) and, once it
falls silent, the view change to view 2 rests on its lying view change. A seed alone
replays it: `python -m tests.sim.replay SEED --n 4 --profile views`.
"""

from __future__ import annotations

import attrs

from .params import Crash, Partition, ScheduleParams, schedule_rng


def views_params(seed: int, n: int) -> ScheduleParams:
    rng = schedule_rng(seed, n, "views")
    ids = [1, 2] if n >= 7 and rng.random() < 0.5 else [1]
    base = ScheduleParams.from_seed(
        seed, n, adversaries=("rule_breaker",), byzantine_ids=ids, crash_p=0.0, max_drop_p=0.05
    )
    at = rng.uniform(0.3, 1.5)
    back = at + rng.uniform(1.0, 3.0)
    if rng.random() < 0.5:
        crashes, partitions = (Crash(0, at, back),), ()
    else:
        crashes, partitions = (), (Partition(at, back, (tuple(range(1, n)), (0,))),)
    clients = rng.randint(2, 3)
    return attrs.evolve(
        base,
        crashes=crashes,
        partitions=partitions,
        gst=back + rng.uniform(0.0, 1.0),
        clients=clients,
        client_start=tuple(rng.uniform(0.0, 0.3) for _ in range(clients)),
        requests_per_client=rng.randint(4, 8),
    )
