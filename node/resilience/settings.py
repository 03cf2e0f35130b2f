"""Validated settings of the resilience layer, one attrs class per cluster.toml section.

`BreakerConfig` is `[breaker]`, `TimeoutConfig` is `[timeout]`, `FallbackConfig` is
`[fallback]`; `HealthConfig` has no section of its own (its defaults are the policy).
Every class validates in its constructor and raises `ValueError` naming the field, so a
bad cluster.toml fails at load time with one clear line. `from_mapping` builds a config
from a TOML table and rejects unknown keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

__all__ = [
    "BreakerConfig",
    "FallbackConfig",
    "HealthConfig",
    "TimeoutConfig",
    "from_mapping",
]

_C = TypeVar("_C")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _int_at_least(minimum: int):
    def check(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{attribute.name} must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"{attribute.name} must be >= {minimum}, got {value!r}")

    return check


def _positive(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if _number(value, attribute.name) <= 0.0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if _number(value, attribute.name) < 0.0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _fraction_open(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """0 < value < 1."""
    number = _number(value, attribute.name)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{attribute.name} must be strictly between 0 and 1, got {value!r}")


def _fraction_half_open(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """0 <= value < 1."""
    number = _number(value, attribute.name)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _fraction_closed(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """0 < value <= 1."""
    number = _number(value, attribute.name)
    if not 0.0 < number <= 1.0:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value!r}")


def _at_least_one(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if _number(value, attribute.name) < 1.0:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen
class BreakerConfig:
    """Circuit breaker policy (`[breaker]`); defaults are the contract's.

    `backoff_multiplier`: each failed half-open test multiplies the open timeout by this,
    up to `max_open_timeout_s`. `jitter`: a backed-off open timeout is scaled by a factor
    drawn uniformly from [1 - jitter, 1 + jitter]. `backoff_decay_s`: every this many
    seconds spent continuously CLOSED lowers the backoff by one step, back to the base.
    """

    failure_threshold: int = attrs.field(default=5, validator=_int_at_least(1))
    open_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    half_open_max_calls: int = attrs.field(default=3, validator=_int_at_least(1))
    success_threshold: int = attrs.field(default=2, validator=_int_at_least(1))
    request_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    max_open_timeout_s: float = attrs.field(default=300.0, validator=_positive)
    backoff_multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    jitter: float = attrs.field(default=0.1, validator=_fraction_half_open)
    backoff_decay_s: float = attrs.field(default=60.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_open_timeout_s < self.open_timeout_s:
            raise ValueError(
                f"max_open_timeout_s ({self.max_open_timeout_s}) must be >= "
                f"open_timeout_s ({self.open_timeout_s})"
            )


@attrs.frozen
class TimeoutConfig:
    """Adaptive request timeout policy (`[timeout]`).

    timeout = clamp(percentile of the last `window` latencies * `margin`, min_s, max_s);
    with no samples yet the breaker's `request_timeout_s` is used instead.
    """

    min_s: float = attrs.field(default=0.05, validator=_positive)
    max_s: float = attrs.field(default=10.0, validator=_positive)
    percentile: float = attrs.field(default=0.99, validator=_fraction_closed)
    window: int = attrs.field(default=100, validator=_int_at_least(1))
    margin: float = attrs.field(default=1.5, validator=_at_least_one)

    def __attrs_post_init__(self) -> None:
        if self.min_s > self.max_s:
            raise ValueError(f"min_s ({self.min_s}) must be <= max_s ({self.max_s})")


@attrs.frozen
class FallbackConfig:
    """Fallback queue policy (`[fallback]`): capacity per peer and attempts per item."""

    max_queue: int = attrs.field(default=1000, validator=_int_at_least(1))
    max_retries: int = attrs.field(default=3, validator=_int_at_least(1))


def _default_evidence_weights() -> dict[str, float]:
    return {"invalid_signature": 0.5, "equivocation": 0.9, "invalid_message": 0.2}


def _weights(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{attribute.name} must be a mapping of kind -> weight")
    for kind, weight in value.items():
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"{attribute.name}: kind must be a non-empty string, got {kind!r}")
        if not 0.0 < _number(weight, f"{attribute.name}[{kind}]") <= 1.0:
            raise ValueError(f"{attribute.name}[{kind}] must be in (0, 1], got {weight!r}")


@attrs.frozen
class HealthConfig:
    """Peer health score policy.

    `ewma_alpha`: weight of the newest outcome in the success-rate EWMA (and latency EWMA).
    `latency_ref_s`, `latency_weight`: a peer whose smoothed latency equals the reference
    loses half of `latency_weight` of its score; a very slow one loses all of it.
    `evidence_weights`: how much one piece of Byzantine evidence of each kind subtracts from
    the penalty-free score (penalties add up, capped at 1); unknown kinds weigh
    `default_evidence_weight`. Penalties halve every `evidence_half_life_s`.
    `half_open_factor`: score multiplier while the peer's circuit is half-open.
    """

    ewma_alpha: float = attrs.field(default=0.2, validator=_fraction_closed)
    latency_ref_s: float = attrs.field(default=0.5, validator=_positive)
    latency_weight: float = attrs.field(default=0.3, validator=_fraction_half_open)
    evidence_half_life_s: float = attrs.field(default=600.0, validator=_positive)
    evidence_weights: Mapping[str, float] = attrs.field(
        factory=_default_evidence_weights, validator=_weights
    )
    default_evidence_weight: float = attrs.field(default=0.25, validator=_fraction_closed)
    half_open_factor: float = attrs.field(default=0.5, validator=_fraction_closed)


def from_mapping(cls: type[_C], table: Mapping[str, Any]) -> _C:
    """Build config class `cls` from a TOML table; unknown keys are a ValueError."""
    known = {field.name for field in attrs.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) for {cls.__name__}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    return cls(**dict(table))
