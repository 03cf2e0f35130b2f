"""The spec of a view change, written apart from `node/consensus/viewchange.py`.

`NewViewJudge.valid(nv)` says whether a NewView is one PBFT allows (Castro & Liskov,
TOCS 2002, section 4.4), by this module's own reading and with signatures checked by a
`VoteMonitor` (spec.py): from the view's primary; 2f + 1 view changes for exactly that
view from distinct members, each signed; each one's checkpoint proof 2f + 1 matching
signed checkpoints (none for the genesis checkpoint); each of its prepared certificates
a pre-prepare of its view's primary (a view below the new one, above the checkpoint, a
batch that hashes to the digest) with 2f matching prepares from distinct other members;
and re-issued pre-prepares that are exactly, seq by seq from the highest reported
checkpoint to the highest certified seq, the batch of the highest-view certificate, or
the null batch where none has one.

The harness holds every NewView a correct replica sends or is given, and a correct
replica may enter view v > 0 only if it holds a NewView for v that this judge accepts.
"""

from __future__ import annotations

from typing import Any

from node.protocol.messages import NULL_DIGEST, NewView, PreparedCert, ViewChange, batch_digest


class NewViewJudge:
    def __init__(self, n: int, f: int, signed: Any) -> None:
        """`signed(msg)`: whether `msg` carries a valid signature of its sender."""
        self.n, self.f = n, f
        self._signed = signed
        self._verdicts: dict[tuple[bytes, bytes], str | None] = {}
        #: replica -> views it holds a valid NewView for
        self.held: dict[int, set[int]] = {}

    def hold(self, replica: int, nv: NewView) -> None:
        if self.problem(nv) is None:
            self.held.setdefault(replica, set()).add(nv.view)

    def may_enter(self, replica: int, view: int) -> bool:
        return view == 0 or view in self.held.get(replica, ())

    def problem(self, nv: NewView) -> str | None:
        """Why `nv` is not a NewView PBFT allows (None: it is)."""
        key = (nv.payload, nv.signature)
        if key not in self._verdicts:
            if len(self._verdicts) > 20_000:
                self._verdicts.clear()
            self._verdicts[key] = self._judge(nv)
        return self._verdicts[key]

    def _judge(self, nv: NewView) -> str | None:
        if nv.sender != nv.view % self.n or not self._signed(nv):
            return "not signed by the view's primary"
        senders = {vc.sender for vc in nv.view_changes}
        if len(senders) != len(nv.view_changes) or len(senders) < 2 * self.f + 1:
            return f"{len(senders)} distinct view changes of {len(nv.view_changes)}"
        for vc in nv.view_changes:
            trouble = self._view_change(vc, nv.view)
            if trouble:
                return f"view change of {vc.sender}: {trouble}"
        expected = self._expected(nv.view_changes)
        got = [(pp.view, pp.seq, pp.digest, pp.sender) for pp in nv.pre_prepares]
        want = [(nv.view, seq, digest, nv.sender) for seq, digest in expected]
        if got != want:
            return f"re-issued {len(got)} pre-prepares that are not the {len(want)} computed"
        for pp in nv.pre_prepares:
            if batch_digest(pp.batch) != pp.digest or not self._signed(pp):
                return f"re-issued pre-prepare for seq {pp.seq} unsigned or unhashed"
        return None

    def _view_change(self, vc: ViewChange, view: int) -> str | None:
        if vc.sender >= self.n or vc.new_view != view or not self._signed(vc):
            return "not a signed view change of a member for this view"
        if vc.stable_seq < 0 or (vc.stable_seq == 0) != (not vc.checkpoint_proof):
            return "a checkpoint proof where none belongs, or none where one does"
        if vc.stable_seq > 0:
            proof = vc.checkpoint_proof
            if len({cp.sender for cp in proof}) != len(proof) or len(proof) < 2 * self.f + 1:
                return "a checkpoint proof without 2f+1 distinct signers"
            digest = proof[0].digest
            for cp in proof:
                if cp.seq != vc.stable_seq or cp.digest != digest:
                    return "a checkpoint proof of mixed checkpoints"
                if cp.sender >= self.n or not self._signed(cp):
                    return "a checkpoint proof with a bad signer"
        for cert in vc.prepared:
            trouble = self._cert(cert, vc)
            if trouble:
                return f"certificate for seq {cert.pre_prepare.seq}: {trouble}"
        return None

    def _cert(self, cert: PreparedCert, vc: ViewChange) -> str | None:
        pp = cert.pre_prepare
        if not vc.stable_seq < pp.seq or not pp.view < vc.new_view:
            return "outside the view change's range"
        if pp.sender != pp.view % self.n or not self._signed(pp):
            return "pre-prepare not signed by its view's primary"
        if batch_digest(pp.batch) != pp.digest:
            return "batch does not hash to the digest"
        signers = set()
        for p in cert.prepares:
            if (p.view, p.seq, p.digest) != (pp.view, pp.seq, pp.digest):
                return "a prepare for something else"
            if p.sender >= self.n or p.sender == pp.sender or not self._signed(p):
                return "a prepare with a bad signer"
            signers.add(p.sender)
        if len(signers) != len(cert.prepares) or len(signers) < 2 * self.f:
            return f"{len(signers)} distinct prepares"
        return None

    @staticmethod
    def _expected(vcs: tuple[ViewChange, ...]) -> list[tuple[int, bytes]]:
        low = max(vc.stable_seq for vc in vcs)
        best: dict[int, tuple[int, bytes]] = {}
        for vc in vcs:
            for cert in vc.prepared:
                pp = cert.pre_prepare
                if pp.seq > low and (pp.seq not in best or pp.view > best[pp.seq][0]):
                    best[pp.seq] = (pp.view, pp.digest)
        top = max(best, default=low)
        return [
            (seq, best[seq][1] if seq in best else NULL_DIGEST) for seq in range(low + 1, top + 1)
        ]
