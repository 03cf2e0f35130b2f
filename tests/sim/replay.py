"""Replay one schedule from its seed: `python -m tests.sim.replay SEED [--n 4] [--bug NAME]`,
or one Twins scenario from its id: `python -m tests.sim.replay --twins ID [--n 4]`.

Prints the schedule, the outcome, the final state of every replica and the trace (the
last `--lines` events). The same seed always gives the same run. `--bug` replays with a
planted bug and its attack profile (names in `bugs.PLANTED_BUGS`). Exit status 1 if the
schedule violates an invariant.
"""

from __future__ import annotations

import argparse
import sys

from .bugs import PLANTED_BUGS
from .harness import Simulation
from .params import ScheduleParams
from .result import SimResult
from .runner import params_for
from .trace import Trace
from .twins import build as build_twins
from .twins import scenario


def build(
    seed: int, n: int, bug: str | None, lines: int = 200, profile: str = "default"
) -> Simulation:
    """The simulation of one schedule (a profile of the default run, or a planted bug's)."""
    if bug is None:
        hint = f"python -m tests.sim.replay {seed} --n {n} --profile {profile}"
        sim = Simulation(params_for(profile, seed, n), replay_hint=hint)
    else:
        planted = PLANTED_BUGS[bug]
        params = ScheduleParams.from_seed(seed, n, **planted.profile(n))
        hint = f"python -m tests.sim.replay {seed} --n {n} --bug {bug}"
        sim = Simulation(params, planted.rules, replay_hint=hint)
    sim.trace = Trace(keep=lines)
    return sim


def describe_replicas(sim: Simulation) -> str:
    out = []
    for node, core in enumerate(sim.cores):
        r = sim.name(node)
        twin = sim.identity[node] in sim.params.twins
        role = "twin" if twin else sim.params.byzantine.get(node, "correct")
        if core is None:
            out.append(f"  replica {r} ({role}): crashed")
            continue
        out.append(
            f"  replica {r} ({role}): view={core.view} in_vc={core.in_view_change} "
            f"last_executed={core.last_executed} stable={core.stable_checkpoint} "
            f"fetching={core.fetching} state={core.state_digest[:4].hex()} "
            f"mem={core.memory_footprint()}"
        )
    return "\n".join(out)


def summary(result: SimResult) -> str:
    return (
        f"steps={result.steps} time={result.virtual_time:.3f}s seqs={result.executed_seqs} "
        f"completed={result.completed} view_changes={result.view_changes} "
        f"state_transfers={result.state_transfers} restarts={result.restarts} "
        f"rejected={dict(result.rejected)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.replay", description=__doc__)
    parser.add_argument("seed", type=int, nargs="?", help="the schedule's seed")
    parser.add_argument("--twins", type=int, metavar="ID", help="replay a Twins scenario")
    parser.add_argument("--n", type=int, default=4, help="replicas (4 or 7; default 4)")
    parser.add_argument("--bug", choices=sorted(PLANTED_BUGS), help="replay with a planted bug")
    parser.add_argument("--lines", type=int, default=200, help="trace lines to print")
    parser.add_argument(
        "--profile",
        choices=("default", "rejoin", "attack"),
        default="default",
        help="schedule profile",
    )
    args = parser.parse_args(argv)
    if (args.seed is None) == (args.twins is None):
        parser.error("give a SEED or --twins ID")
    if args.twins is not None:
        try:
            print(scenario(args.n, args.twins).describe())
        except ValueError as e:
            parser.error(str(e))
        sim = build_twins(args.n, args.twins, args.bug)
        sim.trace = Trace(keep=args.lines)
    else:
        sim = build(args.seed, args.n, args.bug, args.lines, args.profile)
    result = sim.run()
    print(f"schedule: {sim.params.summary()}")
    print(f"outcome: {'ok' if result.ok else 'FAILED'}  {summary(result)}")
    for violation in result.violations:
        print(f"  violation: {violation}")
    print("replicas:")
    print(describe_replicas(sim))
    print("--- last events ---")
    print(result.trace.render())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
