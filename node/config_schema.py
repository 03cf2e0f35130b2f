"""Every key of ``cluster.toml``: section -> key -> (type, default). ``node.config``
checks the types and refuses unknown keys, so a typo does not silently fall back to a
default; ``bft-node init`` writes every key with its default."""

from __future__ import annotations

from typing import Any

# Section -> key -> (type, default). Types are checked; unknown keys are refused so a typo
# does not silently fall back to a default.
SCHEMA: dict[str, dict[str, tuple[type, Any]]] = {
    "cluster": {"f": (int, 1), "request_timeout_s": (float, 2.0)},
    "client": {"call_timeout_s": (float, 30.0)},
    "breaker": {
        "failure_threshold": (int, 5),
        "open_timeout_s": (float, 30.0),
        "half_open_max_calls": (int, 3),
        "success_threshold": (int, 2),
        "request_timeout_s": (float, 10.0),
        "max_open_timeout_s": (float, 300.0),
        "backoff_multiplier": (float, 2.0),
        "jitter": (float, 0.1),
        "backoff_decay_s": (float, 60.0),
    },
    "timeout": {
        "min_s": (float, 0.05),
        "max_s": (float, 10.0),
        "percentile": (float, 0.99),
        "window": (int, 100),
        "margin": (float, 1.5),
    },
    "fallback": {"max_queue": (int, 1000), "max_retries": (int, 3)},
    "consensus": {
        "batch_max": (int, 64),
        "checkpoint_interval": (int, 100),
        "watermark_window": (int, 400),
        "view_change_timeout_s": (float, 2.0),
        "batch_timeout_s": (float, 0.002),
        "status_interval_s": (float, 1.0),
        "tentative_execution": (bool, True),
        "commit_authenticators": (bool, True),
    },
    "transport": {
        "keepalive_interval_s": (float, 1.0),
        "keepalive_timeout_s": (float, 3.0),
        "handshake_timeout_s": (float, 5.0),
        "max_peer_frame": (int, 16 * 1024 * 1024),
        "max_client_frame": (int, 64 * 1024),
        "max_peer_message": (int, 512 * 1024 * 1024),
        "tls": (bool, False),
        "ca_file": (str, "keys/ca.crt"),
        "cert_dir": (str, "keys"),
    },
}
