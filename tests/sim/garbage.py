"""Field mutation for the garbage adversary: change one field of a message at random.

`mutate(msg, rng)` returns a copy of an attrs message with one field (possibly nested in a
certificate, a batch or a proof) replaced by a plausible-but-wrong value: an int off by
one, zero, or huge; bytes flipped, truncated or random; a tuple shortened, duplicated or
reordered; a string changed. The result may not even encode; the harness pushes every
Byzantine message through the real codec and drops what does not survive, as the shell
would.
"""

from __future__ import annotations

import random
from typing import Any

import attrs


def _mutate_value(value: Any, rng: random.Random, depth: int) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice((0, 1, value + 1, max(value - 1, 0), value + 1000, 2**63 - 1))
    if isinstance(value, bytes):
        choice = rng.randrange(4)
        if choice == 0 and value:
            i = rng.randrange(len(value))
            return value[:i] + bytes([value[i] ^ 0xFF]) + value[i + 1 :]
        if choice == 1:
            return value[: len(value) // 2]
        if choice == 2:
            return rng.randbytes(len(value))
        return value + rng.randbytes(rng.randint(1, 8))
    if isinstance(value, str):
        return rng.choice(("", value + "x", "mallory/evil", value[::-1]))
    if isinstance(value, tuple):
        if value and depth < 3 and attrs.has(type(value[0])) and rng.random() < 0.5:
            i = rng.randrange(len(value))
            return value[:i] + (mutate(value[i], rng, depth + 1),) + value[i + 1 :]
        choice = rng.randrange(3)
        if choice == 0:
            return value[:-1]
        if choice == 1:
            return value + value[-1:]
        return tuple(reversed(value))
    if attrs.has(type(value)) and depth < 3:
        return mutate(value, rng, depth + 1)
    return value


def mutate(msg: Any, rng: random.Random, depth: int = 0) -> Any:
    """A copy of `msg` with one randomly chosen field changed (signature left as is)."""
    if not attrs.has(type(msg)):
        return msg
    names = [a.name for a in attrs.fields(type(msg)) if a.name != "signature"]
    if not names:
        return msg
    name = rng.choice(names)
    return attrs.evolve(msg, **{name: _mutate_value(getattr(msg, name), rng, depth)})
