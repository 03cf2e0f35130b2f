"""Fault modes a replica can be started with (`--fault`), parsed and validated.

The modes act in the shell only (outbound messages and signing), never in the core's
honest path; `node/shell/replica.py` applies them. A faulty replica reports its mode in
/status and in the `bft_replica_info` metric.
"""

from __future__ import annotations

import attrs

MODES = ("crash-after", "silent", "delay", "drop", "equivocate", "bad-signature")
USAGE = "crash-after:SECONDS, silent, delay:MS, drop:P, equivocate, bad-signature"
#: what each mode does, for `bft-node run --help`
DESCRIPTIONS = {
    "crash-after:SECONDS": "exit abruptly SECONDS after start, as a crash would",
    "silent": "receive everything, send nothing",
    "delay:MS": "hold every outbound message MS milliseconds",
    "drop:P": "drop a share P (0 to 1) of outbound messages",
    "equivocate": "as primary, send conflicting pre-prepares to different backups",
    "bad-signature": "sign with a wrong key (the others reject what it signs)",
}


@attrs.frozen
class Fault:
    mode: str
    value: float | None = None

    def __str__(self) -> str:
        if self.value is None:
            return self.mode
        v = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.mode}:{v}"


def parse_fault(text: str | None) -> Fault | None:
    """Parse a `--fault` value; raise ValueError with the allowed forms on a mistake."""
    if text is None or text == "" or text == "none":
        return None
    mode, sep, arg = text.partition(":")
    if mode not in MODES:
        raise ValueError(f"unknown fault mode {text!r}; one of: {USAGE}")
    if mode in ("silent", "equivocate", "bad-signature"):
        if sep:
            raise ValueError(f"fault {mode} takes no value")
        return Fault(mode)
    if not sep:
        raise ValueError(f"fault {mode} needs a value ({USAGE})")
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"fault {mode}: {arg!r} is not a number") from None
    if mode == "drop" and not 0.0 <= value <= 1.0:
        raise ValueError(f"fault drop:P needs 0 <= P <= 1, got {value}")
    if value < 0:
        raise ValueError(f"fault {mode} needs a non-negative value, got {value}")
    return Fault(mode, value)
