"""Deterministic Ed25519 keys for simulated replicas and client principals.

Keys depend only on (n, role, id), never on the schedule seed, so they are generated once
per cluster size and cached across the thousands of schedules of a run. Every key is a
real Ed25519 key: signatures the cores verify are real signatures.
"""

from __future__ import annotations

import functools
import hashlib

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PRINCIPALS: tuple[str, ...] = ("client", "alice")


@attrs.frozen
class KeyPair:
    seed: bytes  # 32-byte raw private seed
    public: bytes  # 32-byte raw public key
    private: Ed25519PrivateKey = attrs.field(eq=False, repr=False)


def _keypair(label: str) -> KeyPair:
    seed = hashlib.sha256(f"bft-sim-key/{label}".encode()).digest()
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KeyPair(seed, public, private)


@attrs.frozen
class ClusterKeys:
    replicas: tuple[KeyPair, ...]
    clients: dict[str, KeyPair]
    outsider: KeyPair  # a key nobody trusts: for forging

    @property
    def replica_public(self) -> dict[int, bytes]:
        return {i: kp.public for i, kp in enumerate(self.replicas)}

    @property
    def client_public(self) -> dict[str, bytes]:
        return {name: kp.public for name, kp in self.clients.items()}


@functools.cache
def cluster_keys(n: int) -> ClusterKeys:
    """The cached key set of an n-replica simulated cluster."""
    return ClusterKeys(
        replicas=tuple(_keypair(f"{n}/replica/{i}") for i in range(n)),
        clients={p: _keypair(f"{n}/client/{p}") for p in PRINCIPALS},
        outsider=_keypair(f"{n}/outsider"),
    )
