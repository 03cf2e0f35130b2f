"""Adaptive request timeout: a per-peer deadline from the peer's recent latencies.

timeout = clamp(percentile(window) * margin, min_s, max_s), and the configured request
timeout while no sample has been seen. Memory is bounded by the window: a ring buffer of
the last `window` samples plus the same samples kept sorted, so `record` is a bisect and a
C-level list move (O(window) memmove, a few hundred ns at window 100) and `timeout()`,
`percentile()` are O(1). The mean is computed on demand with `math.fsum` (exact).

Samples that are negative, NaN or infinite are dropped and counted in `dropped`.
The shell records a timed-out call's elapsed time too (a lower bound of the true latency),
so a peer that became slower pushes its own deadline up instead of timing out forever.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort

from node.resilience.settings import TimeoutConfig

__all__ = ["AdaptiveTimeout"]


class AdaptiveTimeout:
    """Bounded latency window and the timeout it implies."""

    __slots__ = ("_next", "_ring", "_sorted", "config", "default_s", "dropped")

    def __init__(self, config: TimeoutConfig, default_s: float) -> None:
        if not isinstance(config, TimeoutConfig):
            raise TypeError(f"config must be a TimeoutConfig, got {type(config).__name__}")
        if isinstance(default_s, bool) or not isinstance(default_s, int | float):
            raise ValueError(f"default_s must be a number, got {default_s!r}")
        if not (0.0 < default_s < math.inf):
            raise ValueError(f"default_s must be a positive finite number, got {default_s!r}")
        self.config = config
        self.default_s = float(default_s)
        self._ring: list[float] = []
        self._sorted: list[float] = []
        self._next = 0
        self.dropped = 0

    def record(self, latency_s: float) -> bool:
        """Add one latency sample; False (and counted) if it is not a valid duration."""
        try:
            value = float(latency_s)
        except (TypeError, ValueError):
            self.dropped += 1
            return False
        if not (0.0 <= value < math.inf):  # also rejects NaN
            self.dropped += 1
            return False
        ring = self._ring
        ordered = self._sorted
        if len(ring) < self.config.window:
            ring.append(value)
        else:
            old = ring[self._next]
            ring[self._next] = value
            del ordered[bisect_left(ordered, old)]
        self._next = (self._next + 1) % self.config.window
        insort(ordered, value)
        return True

    def percentile(self, fraction: float | None = None) -> float | None:
        """Nearest-rank percentile of the window (configured one by default); None if empty."""
        ordered = self._sorted
        if not ordered:
            return None
        p = self.config.percentile if fraction is None else fraction
        if not 0.0 < p <= 1.0:
            raise ValueError(f"percentile fraction must be in (0, 1], got {p!r}")
        rank = math.ceil(p * len(ordered) - 1e-9)
        return ordered[min(max(rank, 1), len(ordered)) - 1]

    def mean(self) -> float | None:
        if not self._ring:
            return None
        return math.fsum(self._ring) / len(self._ring)

    def timeout(self) -> float:
        """The deadline for the next call, in seconds."""
        ordered = self._sorted
        if not ordered:
            return self.default_s
        cfg = self.config
        rank = math.ceil(cfg.percentile * len(ordered) - 1e-9)
        value = ordered[min(max(rank, 1), len(ordered)) - 1] * cfg.margin
        return min(max(value, cfg.min_s), cfg.max_s)

    def clear(self) -> None:
        """Forget every sample (the timeout falls back to `default_s`)."""
        self._ring.clear()
        self._sorted.clear()
        self._next = 0

    def __len__(self) -> int:
        return len(self._ring)

    def __repr__(self) -> str:
        return f"<AdaptiveTimeout samples={len(self._ring)} timeout={self.timeout():.4f}s>"
