"""Schedule profile "attack": a rule-breaking replica (rulebreaker.py) where it can do harm.

In the default mix a Byzantine replica rarely leads a view change (the primary of view 0
must fail first) and is rarely the one a lagging replica hears from. Each schedule here
is one of:

- `lead`: replica 1 (the primary of view 1) is a rule breaker (for n=7, sometimes replica
  2 as well), and the correct primary of view 0 crashes or is cut off after the clients
  have started, so the view change to view 1 is led by the rule breaker (its lying
  NewViews, nvlies.py, reach every replica before its real one) and, once it falls
  silent, the view change to view 2 rests on its lying view change;
- `laggard`: a correct backup crashes or is cut off for several checkpoint intervals
  while a rule breaker goes on with the others; when the backup is back, the rule
  breaker answers its status with lying state responses before its own fetch gets an
  answer.

A seed alone replays it: `python -m tests.sim.replay SEED --n 4 --profile attack`.
"""

from __future__ import annotations

import attrs

from .params import Crash, Partition, ScheduleParams, schedule_rng


def _down(n: int, victim: int, at: float, back: float, crash: bool):
    if crash:
        return (Crash(victim, at, back),), ()
    others = tuple(r for r in range(n) if r != victim)
    return (), (Partition(at, back, (others, (victim,))),)


def attack_params(seed: int, n: int) -> ScheduleParams:
    rng = schedule_rng(seed, n, "attack")
    lead = rng.random() < 0.5
    if lead:
        ids = [1, 2] if n >= 7 and rng.random() < 0.5 else [1]
        victim, at, requests = 0, rng.uniform(0.3, 1.5), rng.randint(4, 8)
        back = at + rng.uniform(1.0, 3.0)
    else:
        ids = [rng.choice((0, 1))]
        victim, at, requests = rng.choice(range(2, n)), rng.uniform(0.1, 0.5), rng.randint(6, 12)
        back = at + rng.uniform(1.5, 4.0)
    base = ScheduleParams.from_seed(
        seed, n, adversaries=("rule_breaker",), byzantine_ids=ids, crash_p=0.0, max_drop_p=0.05
    )
    crashes, partitions = _down(n, victim, at, back, crash=rng.random() < 0.5)
    clients = rng.randint(2, 3)
    ckpt = base.checkpoint_interval if lead else rng.choice((2, 3))
    return attrs.evolve(
        base,
        crashes=crashes,
        partitions=partitions,
        gst=back + rng.uniform(0.0, 1.0),
        clients=clients,
        client_start=tuple(rng.uniform(0.0, 0.3) for _ in range(clients)),
        requests_per_client=requests,
        checkpoint_interval=ckpt,
        watermark_window=ckpt * rng.choice((2, 3)),
    )
