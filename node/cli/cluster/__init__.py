"""Operator tools around a cluster: the local launcher, `status`, the `watch` dashboard.

- `launcher`: `LocalCluster` and `bft-node cluster up/kill/revive`;
- `control`: the lock, state file and control socket a running launcher is found by;
- `status`: `collect` every replica's /status and `bft-node status`;
- `watch`: snapshot diffs -> events, the rich dashboard, `bft-node watch`;
- `http`: the small /status and /healthz fetcher they share.

`run_trio` is `trio.run` for the commands here: a user mistake or a Ctrl-C raised inside
a nursery arrives wrapped in an exception group; it is unwrapped so the CLI prints one
line (or exits 130) instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio


def run_trio(fn: Callable[..., Any], *args: Any) -> Any:
    """trio.run(fn, *args), re-raising a lone UserError/ConfigError/KeyboardInterrupt bare."""
    from node.config import ConfigError
    from node.errors import UserError, only_of

    try:
        return trio.run(fn, *args)
    except BaseExceptionGroup as group:
        for kind in ((UserError, ConfigError), KeyboardInterrupt):
            lone = only_of(group, kind)
            if lone is not None:
                raise lone from None
        raise
