"""How a `--fault` mode changes what the shell sends; the honest core is untouched.

`FaultInjector.outbound(to, msg)` is asked for every outbound peer message and returns what
to really send (nothing, the message, or a forged variant) and after what delay. Signing
with a wrong key (`bad-signature`) is done by handing the core a `Signer` of a random key;
`crash-after` is a timer in the shell that ends the process abruptly.
"""

from __future__ import annotations

import random

import attrs

from node.protocol.crypto import Signer, sign_message
from node.protocol.messages import Message, PrePrepare, batch_digest
from node.shell.fault_modes import Fault


@attrs.frozen
class Outbound:
    msg: Message
    delay_s: float = 0.0


class FaultInjector:
    """Applies one fault mode (or none) to outbound traffic."""

    def __init__(self, fault: Fault | None, signer: Signer, rng: random.Random) -> None:
        self.fault = fault
        self.mode = fault.mode if fault else None
        self._signer = signer
        self._rng = rng
        self.delay_s = (fault.value or 0.0) / 1000.0 if self.mode == "delay" else 0.0
        self.drop_p = float(fault.value or 0.0) if self.mode == "drop" else 0.0

    @property
    def crash_after_s(self) -> float | None:
        return self.fault.value if self.mode == "crash-after" and self.fault else None

    def core_signer(self) -> Signer:
        """The signer the core gets: a random key under `bad-signature`."""
        if self.mode == "bad-signature":
            return Signer(self._rng.randbytes(32))
        return self._signer

    def outbound(self, to: int, msg: Message) -> Outbound | None:
        """What to send to replica `to` instead of `msg` (None: send nothing)."""
        mode = self.mode
        if mode is None:
            return Outbound(msg)
        if mode == "silent":
            return None
        if mode == "drop":
            return None if self._rng.random() < self.drop_p else Outbound(msg)
        if mode == "delay":
            return Outbound(msg, self.delay_s)
        if mode == "equivocate" and isinstance(msg, PrePrepare) and to % 2 == 1:
            return Outbound(self._forge(msg))
        return Outbound(msg)

    def allows_client_replies(self) -> bool:
        return self.mode != "silent"

    def _forge(self, pp: PrePrepare) -> PrePrepare:
        """A conflicting pre-prepare for the same (view, seq), validly signed by us: the
        same batch minus its last request (the null request if it had one)."""
        batch = pp.batch[:-1]
        forged = PrePrepare(pp.view, pp.seq, batch_digest(batch), batch, pp.sender)
        return sign_message(forged, self._signer)
