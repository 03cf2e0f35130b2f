"""The Trio shell around the pure layers.

`node.shell.guard` applies the resilience layer per peer (breaker, adaptive timeout,
fallback queue, health) to real awaited calls; `node.shell.guard_tasks` holds its
background probe and drain tasks.
"""

from node.shell.guard import CallResult, GuardHooks, GuardSet, PeerGuard

__all__ = ["CallResult", "GuardHooks", "GuardSet", "PeerGuard"]
