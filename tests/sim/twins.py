"""Twins scenarios (Bano et al., "Twins: BFT Systems Made Robust", 2021).

A faulty identity is run as two honest `ReplicaCore`s that share its keys (node `r` and
node `r'`, harness.py); a message to replica `r` reaches whichever copies are on the
sender's side of the current partition. So equivocation, conflicting votes, conflicting
view changes and NewViews come from honest code, not from hand-written attacks.

A scenario is: which identities have twins, then a sequence of phases of `PHASE_S`
virtual seconds, each with its own partition of the nodes into (at most) three sides,
then a last phase where every node hears every other (GST). The two copies of a twin are
always on different sides, so each copy leads
or votes with its own part of the network. PBFT's leader schedule is fixed (the primary
of view v is v mod n), so the scenarios choose it through the twins and the partitions:
the twin is the primary of view 0 or of view 1, and a phase that leaves the current
primary without a quorum on its side forces a view change, into a view whose primary
may be twinned.

- n=4 (f=1): every scenario of one twin (identity 0 or 1) and two phases, each other
  replica on one of the three sides: 2 x 27^2 = 1,458 ids. Swapping the two copies'
  sides in every phase gives the same scenario with the copies renamed, so only one of
  each mirrored pair is run (`canonical`): 730 scenarios.
- n=7 (f=2): one or two twins among the first three primaries, two or three phases,
  drawn from the scenario id as a seed; `BFT_SIM_TWINS` (default 100) of them are run.

A scenario replays from its id alone: `python -m tests.sim.replay --twins ID --n 4`.
"""

from __future__ import annotations

import os

import attrs

from .bugs import PLANTED_BUGS
from .harness import Simulation
from .network import NetworkParams
from .params import Partition, ScheduleParams, schedule_rng
from .result import SimResult

PHASE_S = 1.2
#: a phase starts this long after the previous one heals (heal, then cut: never merged)
GAP_S = 1e-4
N4_TWINS = (0, 1)
N4_PHASES = 2
SIDES = 3


@attrs.frozen
class TwinsScenario:
    scenario_id: int
    n: int
    twins: tuple[int, ...]
    #: per phase, the sides of the partition as node ids (twin copies are nodes n, n+1, ..)
    phases: tuple[tuple[tuple[int, ...], ...], ...]

    def describe(self) -> str:
        def name(node: int) -> str:
            return str(node) if node < self.n else f"{self.twins[node - self.n]}'"

        shown = [" | ".join("{" + ",".join(map(name, s)) + "}" for s in p) for p in self.phases]
        head = f"twins {self.scenario_id} n={self.n} twinned={list(self.twins)}: "
        return head + " ; ".join(shown)

    def params(self) -> ScheduleParams:
        """The schedule: no crashes, no loss, short delays; only the phases cut links."""
        base = ScheduleParams.from_seed(self.scenario_id, self.n, byzantine_count=0, crash_p=0.0)
        partitions = tuple(
            Partition(i * PHASE_S + GAP_S, (i + 1) * PHASE_S, sides)
            for i, sides in enumerate(self.phases)
        )
        # two clients start in each phase, so every phase has requests to order
        starts = tuple(i * PHASE_S + d for i in range(len(self.phases)) for d in (0.01, 0.2))
        return attrs.evolve(
            base,
            twins=self.twins,
            byzantine={},
            crashes=(),
            partitions=partitions,
            network=NetworkParams(max_delay_s=0.02),
            gst=len(self.phases) * PHASE_S,
            clients=len(starts),
            requests_per_client=3,
            client_start=starts,
            view_change_timeout_s=0.5,
            client_retry_s=0.3,
        )


def n4_count() -> int:
    return len(N4_TWINS) * SIDES ** (3 * N4_PHASES)


def n7_count() -> int:
    return int(os.environ.get("BFT_SIM_TWINS", "100"))


def _sides(
    n: int, twins: tuple[int, ...], copies: list[tuple[int, int]], placement: list[int]
) -> tuple[tuple[int, ...], ...]:
    """The partition of one phase: the copies of twin `twins[i]` on the two different
    sides `copies[i]`, every other replica on side `placement[j]`; empty sides left out."""
    sides: list[list[int]] = [[] for _ in range(SIDES)]
    others = [r for r in range(n) if r not in twins]
    for i, (r, (a, b)) in enumerate(zip(twins, copies, strict=True)):
        sides[a].append(r)
        sides[b].append(n + i)
    for r, side in zip(others, placement, strict=True):
        sides[side].append(r)
    return tuple(tuple(sorted(s)) for s in sides if s)


def scenario(n: int, scenario_id: int) -> TwinsScenario:
    """The scenario with this id: decoded for n=4 (exhaustive), drawn for n=7."""
    if n == 4:
        if not 0 <= scenario_id < n4_count():
            raise ValueError(f"n=4 Twins scenario ids are 0..{n4_count() - 1}")
        rest, which = divmod(scenario_id, len(N4_TWINS))
        twins = (N4_TWINS[which],)
        phases = []
        for _ in range(N4_PHASES):
            placement = []
            for _ in range(n - 1):
                rest, side = divmod(rest, SIDES)
                placement.append(side)
            phases.append(_sides(n, twins, [(0, 1)], placement))
        return TwinsScenario(scenario_id, n, twins, tuple(phases))
    rng = schedule_rng(scenario_id, n, "twins")
    f = (n - 1) // 3
    twins = tuple(sorted(rng.sample(range(3), rng.randint(1, f))))
    phases = []
    for _ in range(rng.choice((2, 3))):
        copies = [tuple(rng.sample(range(SIDES), 2)) for _ in twins]
        placement = [rng.randrange(SIDES) for _ in range(n - len(twins))]
        phases.append(_sides(n, twins, copies, placement))
    return TwinsScenario(scenario_id, n, twins, tuple(phases))


def _placements(scenario_id: int) -> list[int]:
    """The side digits of an n=4 id, phase by phase (the inverse of `scenario`)."""
    rest = scenario_id // len(N4_TWINS)
    digits = []
    for _ in range(N4_PHASES * 3):
        rest, side = divmod(rest, SIDES)
        digits.append(side)
    return digits


def canonical(scenario_id: int) -> bool:
    """Whether an n=4 id is the one of its mirrored pair that is run."""
    digits = _placements(scenario_id)
    mirrored = [{0: 1, 1: 0}.get(d, d) for d in digits]
    return digits <= mirrored


def replay_hint(n: int, scenario_id: int, bug: str | None = None) -> str:
    tail = f" --bug {bug}" if bug else ""
    return f"python -m tests.sim.replay --twins {scenario_id} --n {n}{tail}"


def build(n: int, scenario_id: int, bug: str | None = None) -> Simulation:
    """The simulation of one scenario, with the real core or a planted bug's (bugs.py)."""
    sc = scenario(n, scenario_id)
    hint = f"{replay_hint(n, scenario_id, bug)}  ({sc.describe()})"
    if bug is None:
        return Simulation(sc.params(), replay_hint=hint)
    return Simulation(sc.params(), PLANTED_BUGS[bug].rules, replay_hint=hint)


def run_twins(n: int, ids: range) -> list[SimResult]:
    """Run the scenarios of these ids (for n=4 only the canonical ones); the failures."""
    failed = []
    for scenario_id in ids:
        if n == 4 and not canonical(scenario_id):
            continue
        result = build(n, scenario_id).run()
        if not result.ok:
            failed.append(result)
    return failed
