"""Who takes part in a simulated schedule: the replicas' and clients' signing keys (the
fixed test keys of `keys.py`), the clients with their request-MAC keys, the Byzantine
replicas' adversaries sharing one conspiracy, and the verdict cache the cores share.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from node.consensus.core import ReplicaCore
from node.consensus.params import CoreConfig
from node.protocol.crypto import Signer, VerifyCache, client_mac_keys

from .adversaries import make_adversary
from .adversary import Adversary, AdversaryContext
from .clients import SimClient
from .keys import PRINCIPALS, cluster_keys
from .params import ScheduleParams, schedule_rng


@functools.cache
def signers(n: int) -> tuple[tuple[Signer, ...], dict[str, Signer], Signer]:
    keys = cluster_keys(n)
    return (
        tuple(Signer(kp.seed) for kp in keys.replicas),
        {p: Signer(kp.seed) for p, kp in keys.clients.items()},
        Signer(keys.outsider.seed),
    )


@functools.cache
def client_mac_keys_for(n: int) -> dict[str, list[bytes | None]]:
    """Each client principal's request-MAC keys, one per replica (like a real client's)."""
    keys = cluster_keys(n)
    replica_public = [kp.public for kp in keys.replicas]
    return {
        p: client_mac_keys(Signer(kp.seed), p, replica_public) for p, kp in keys.clients.items()
    }


@functools.cache
def verify_cache(n: int) -> VerifyCache:
    """One verdict cache per cluster size, shared by every core of every schedule
    (a verdict is a pure function of key, payload and signature)."""
    return VerifyCache(max_entries=400_000)


def core_config(p: ScheduleParams) -> CoreConfig:
    """The core configuration every replica of the schedule runs with."""
    return CoreConfig(
        n=p.n,
        f=p.f,
        batch_max=p.batch_max,
        checkpoint_interval=p.checkpoint_interval,
        watermark_window=p.watermark_window,
        view_change_timeout_s=p.view_change_timeout_s,
        batch_timeout_s=p.batch_timeout_s,
        max_in_flight=p.max_in_flight,
        status_interval_s=p.status_interval_s,
    )


def make_adversaries(
    p: ScheduleParams,
    replica_signers: tuple[Signer, ...],
    outsider: Signer,
    core_of: Callable[[int], ReplicaCore],
) -> dict[int, Adversary]:
    """One adversary per Byzantine replica of the schedule; they may conspire."""
    adversaries: dict[int, Adversary] = {}
    conspiracy: dict[Any, Any] = {}
    for r, kind in p.byzantine.items():
        ctx = AdversaryContext(
            r,
            p.n,
            p.f,
            replica_signers[r],
            outsider,
            schedule_rng(p.seed, p.n, f"adversary/{r}"),
            functools.partial(core_of, r),
            p.watermark_window,
            conspiracy,
        )
        adversaries[r] = make_adversary(kind, ctx)
    return adversaries


def make_clients(p: ScheduleParams, client_signers: dict[str, Signer]) -> list[SimClient]:
    """The schedule's clients, spread over the principals, sharing one seeded rng."""
    client_rng = schedule_rng(p.seed, p.n, "clients")
    clients = []
    for i in range(p.clients):
        principal = PRINCIPALS[i % len(PRINCIPALS)]
        clients.append(
            SimClient(
                f"{principal}/c{i}",
                client_signers[principal],
                client_mac_keys_for(p.n)[principal],
                p.n,
                p.f,
                p.requests_per_client,
                client_rng,
            )
        )
    return clients
