"""Free TCP port blocks on 127.0.0.1 for test and bench clusters.

Blocks are chosen below the kernel's ephemeral range, so a killed replica's port is not
handed to some outgoing connection before the replica is revived on it.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable


def _block_free(ports: Iterable[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free TCP ports on 127.0.0.1."""
    rng = random.Random()
    high = max(10000 + count + 1, _ephemeral_low() - count)
    for _ in range(500):
        base = rng.randrange(10000, high)
        if _block_free(range(base, base + count)):
            return base
    raise RuntimeError("no block of free ports found on 127.0.0.1")
