"""``CoreConfig``: the protocol parameters every replica of a cluster must share."""

from __future__ import annotations

import attrs


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class CoreConfig:
    """Protocol parameters.

    ``n`` replicas tolerate ``f`` Byzantine ones (``n >= 3f + 1``). A checkpoint is taken
    every ``checkpoint_interval`` sequence numbers; the primary may run at most
    ``watermark_window`` sequence numbers ahead of the last stable checkpoint (a multiple of
    the interval, at least one interval). ``batch_timeout_s`` of 0 cuts a batch at once.
    ``max_in_flight`` > 0 sizes batches by the load instead (see ``requests.py``): a partial
    batch is cut while fewer than that many batches are in flight, at the end of the round,
    and ``batch_timeout_s`` is not used; 0 keeps the timer alone.
    ``max_pending`` bounds the requests a replica tracks while they wait to be ordered.
    Every ``status_interval_s`` a replica sends its peers a ``Status`` (0 turns that off:
    then a replica that fell behind learns it only from checkpoints and view changes).
    ``tentative_execution`` runs a batch (and replies) once it prepared, before it commits
    (``tentative.py``); off, replicas reply only after commit.
    ``commit_authenticators`` counts a commit on its MAC for this replica (``vote_auth.py``)
    instead of verifying its signature; off, every commit's signature is verified (the
    tags are still sent).
    """

    n: int = 4
    f: int = 1
    batch_max: int = 64
    checkpoint_interval: int = 128
    watermark_window: int = 256
    view_change_timeout_s: float = attrs.field(default=2.0, validator=_positive)
    batch_timeout_s: float = 0.002
    max_pending: int = 100_000
    max_in_flight: int = 0
    status_interval_s: float = 1.0
    tentative_execution: bool = True
    commit_authenticators: bool = True

    def __attrs_post_init__(self) -> None:
        if self.f < 0 or self.n < 3 * self.f + 1:
            raise ValueError(f"need n >= 3f + 1, got n={self.n} f={self.f}")
        if self.batch_max < 1 or self.checkpoint_interval < 1 or self.max_pending < 1:
            raise ValueError("batch_max, checkpoint_interval and max_pending must be >= 1")
        if (
            self.watermark_window < self.checkpoint_interval
            or self.watermark_window % self.checkpoint_interval
        ):
            raise ValueError("watermark_window must be a multiple of checkpoint_interval")
        if self.batch_timeout_s < 0:
            raise ValueError("batch_timeout_s must be >= 0")
        if self.max_in_flight < 0:
            raise ValueError("max_in_flight must be >= 0")
        if type(self.tentative_execution) is not bool:
            raise ValueError("tentative_execution must be true or false")
        if type(self.commit_authenticators) is not bool:
            raise ValueError("commit_authenticators must be true or false")
        if self.status_interval_s < 0:
            raise ValueError("status_interval_s must be >= 0")
