"""Schedule parameters drawn from a seed: cluster size, faults, network chaos, workload.

`ScheduleParams.from_seed(seed, n)` is the single place where a seed turns into a
scenario, so a seed alone replays a schedule. Profiles (`adversaries=`) let the
planted-bug tests pick the attacks that make a given bug show.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import attrs

from .network import NetworkParams

# Every Byzantine behaviour the default run draws from (see adversary.py).
ALL_ADVERSARIES: tuple[str, ...] = (
    "silent",
    "equivocate",
    "conflict_votes",
    "forge",
    "replay",
    "stale_vc",
    "lying_vc",
    "lying_nv",
    "selective",
    "garbage",
    "rule_breaker",
    "stale_reads",
    "eager_tentative",
    "tag_only_commits",
)


def schedule_rng(seed: int, n: int, label: str) -> random.Random:
    """An independent seeded stream for one part of a schedule (params, run, ...)."""
    material = hashlib.sha256(f"bft-sim/{label}/{n}/{seed}".encode()).digest()
    return random.Random(int.from_bytes(material[:16], "big"))


@attrs.frozen
class Crash:
    replica: int
    at: float
    restart_at: float
    #: crash not at `at` but at the first moment after it when the replica holds exactly
    #: 2f commits for a batch it has not executed (the last one still on its way)
    on_commit: bool = False


@attrs.frozen
class Partition:
    at: float
    until: float
    groups: tuple[tuple[int, ...], ...]


@attrs.frozen
class ScheduleParams:
    seed: int
    n: int
    f: int
    byzantine: dict[int, str]  # replica -> adversary kind
    crashes: tuple[Crash, ...]
    partitions: tuple[Partition, ...]
    network: NetworkParams
    gst: float
    clients: int
    requests_per_client: int
    client_start: tuple[float, ...]
    checkpoint_interval: int
    watermark_window: int
    batch_max: int
    view_change_timeout_s: float
    batch_timeout_s: float
    client_retry_s: float
    liveness_bound_s: float
    max_steps: int
    #: the replica's load-sized batching (CoreConfig.max_in_flight; 0 = off)
    max_in_flight: int = 0
    #: CoreConfig.status_interval_s (status messages, view sync and catch-up)
    status_interval_s: float = 0.5
    #: replicas run twice (Twins, twins.py): each copy an honest core with the same keys
    twins: tuple[int, ...] = ()

    @property
    def correct(self) -> list[int]:
        return [r for r in range(self.n) if r not in self.byzantine and r not in self.twins]

    @property
    def settle_time(self) -> float:
        """When the liveness clock starts: GST and every correct replica back up."""
        restarts = [c.restart_at for c in self.crashes]
        return max([self.gst, *restarts])

    def summary(self) -> str:
        byz = ", ".join(f"{r}:{k}" for r, k in sorted(self.byzantine.items())) or "none"
        crashes = ", ".join(f"{c.replica}@{c.at:.2f}-{c.restart_at:.2f}" for c in self.crashes)
        net = self.network
        return (
            f"seed={self.seed} n={self.n} f={self.f} byzantine=[{byz}] crashes=[{crashes}] "
            f"partitions={len(self.partitions)} drop={net.drop_p:.2f} dup={net.dup_p:.2f} "
            f"gst={self.gst:.2f} clients={self.clients}x{self.requests_per_client} "
            f"ckpt={self.checkpoint_interval} win={self.watermark_window} batch={self.batch_max}"
            f" in_flight={self.max_in_flight}"
            + (f" twins={list(self.twins)}" if self.twins else "")
        )

    @classmethod
    def from_seed(
        cls,
        seed: int,
        n: int,
        adversaries: Sequence[str] = ALL_ADVERSARIES,
        byzantine_count: int | None = None,
        byzantine_ids: Sequence[int] | None = None,
        crash_p: float = 0.3,
        max_drop_p: float = 0.15,
    ) -> ScheduleParams:
        rng = schedule_rng(seed, n, "params")
        f = (n - 1) // 3
        byzantine = _draw_byzantine(rng, n, f, adversaries, byzantine_count, byzantine_ids)
        gst = rng.uniform(0.3, 4.0)
        correct = [r for r in range(n) if r not in byzantine]
        crashes = _draw_crashes(rng, correct, gst, crash_p)
        partitions = _draw_partitions(rng, n, gst)
        network = _draw_network(rng, max_drop_p)
        clients = rng.randint(1, 3)
        ckpt = rng.choice((2, 3, 4))
        return cls(
            seed=seed,
            n=n,
            f=f,
            byzantine=byzantine,
            crashes=tuple(crashes),
            partitions=tuple(partitions),
            network=network,
            gst=gst,
            clients=clients,
            requests_per_client=rng.randint(1, 5),
            client_start=tuple(rng.uniform(0.0, 1.0) for _ in range(clients)),
            checkpoint_interval=ckpt,
            watermark_window=ckpt * rng.choice((2, 3)),
            batch_max=rng.choice((1, 2, 4)),
            view_change_timeout_s=rng.choice((0.5, 1.0)),
            batch_timeout_s=rng.choice((0.005, 0.02)),
            client_retry_s=rng.choice((0.3, 0.6)),
            liveness_bound_s=60.0,
            max_steps=200_000,
            # drawn last so every earlier draw of a seed stays what it was
            max_in_flight=rng.choice((0, 1, 2)),
            status_interval_s=rng.choice((0.25, 0.5)),
        )


def _draw_byzantine(
    rng: random.Random,
    n: int,
    f: int,
    adversaries: Sequence[str],
    byzantine_count: int | None,
    byzantine_ids: Sequence[int] | None,
) -> dict[int, str]:
    """Draw which replicas are Byzantine and the adversary kind each one plays."""
    count = rng.randint(0, f) if byzantine_count is None else byzantine_count
    # Half the time the first Byzantine is a primary of view 0 or 1, where it hurts most.
    if byzantine_ids is not None:
        chosen = list(byzantine_ids)
    elif count and rng.random() < 0.5:
        first = [rng.choice((0, 1))]
        rest = rng.sample([r for r in range(n) if r != first[0]], count - 1)
        chosen = first + rest
    else:
        chosen = rng.sample(range(n), count)
    return {r: rng.choice(list(adversaries)) for r in sorted(chosen)}


def _draw_crashes(
    rng: random.Random, correct: list[int], gst: float, crash_p: float
) -> list[Crash]:
    """Draw at most one crash (and its restart) of a correct replica before GST."""
    crashes: list[Crash] = []
    if rng.random() < crash_p:
        victim = rng.choice(correct)
        at = rng.uniform(0.0, gst)
        crashes.append(Crash(victim, at, min(at + rng.uniform(0.1, 2.0), gst + 0.5)))
    return crashes


def _draw_partitions(rng: random.Random, n: int, gst: float) -> list[Partition]:
    """Draw zero to two two-way partitions, each starting before GST."""
    partitions: list[Partition] = []
    for _ in range(rng.choice((0, 0, 1, 2))):
        at = rng.uniform(0.0, gst)
        members = list(range(n))
        rng.shuffle(members)
        cut = rng.randint(1, n - 1)
        groups = (tuple(sorted(members[:cut])), tuple(sorted(members[cut:])))
        partitions.append(Partition(at, at + rng.uniform(0.1, 1.5), groups))
    return partitions


def _draw_network(rng: random.Random, max_drop_p: float) -> NetworkParams:
    """Draw the network chaos: drop and duplicate rates, delays, slow links."""
    return NetworkParams(
        drop_p=rng.uniform(0.0, max_drop_p) if rng.random() < 0.7 else 0.0,
        dup_p=rng.uniform(0.0, 0.1) if rng.random() < 0.5 else 0.0,
        min_delay_s=0.001,
        max_delay_s=rng.choice((0.005, 0.02, 0.05)),
        slow_p=rng.choice((0.0, 0.02, 0.1)),
        slow_delay_s=0.5,
    )
