"""Tentative execution, mixed into ``ReplicaCore``: reply once a batch prepared.

PBFT's optimisation (Castro & Liskov, TOCS 2002, section 5.1): a replica executes the
batch at ``last_executed + 1`` as soon as it *prepared* in the active view, before its
commit certificate arrives, and sends each client a reply marked ``tentative``. A client
accepts a result on ``2f + 1`` matching replies of either kind (or ``f + 1`` matching
committed ones). ``2f + 1`` tentative replies mean at least ``f + 1`` correct replicas
hold a prepared certificate for the batch, and every view-change quorum of ``2f + 1``
contains one of them, so the batch keeps its sequence number in every later view: the
result the client accepted is the one that commits. That saves the client one message
delay and one fsynced round (the commit phase).

At most one batch is tentative: the next one after the committed prefix, so the state a
tentative batch runs on is committed. When its sequence number commits (``settle``), the
same batch becomes executed for good without running again; any other batch there
undoes it first. Entering a view change undoes it at once (the new view re-proposes a
batch that may have committed, which then runs again on the same state with the same
results). The undo restores the app, the client table and so the state digest exactly
(``Executor.roll_back``), and a ``RolledBack`` note says so. Its requests stay pending
until the batch commits; the view-change timer runs for those the replica received from
the client (or again, retransmitted), not for those it saw only in the pre-prepare
(``requests._wait_for_commit``).
Checkpoints are taken only of committed state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.events import Executed, RolledBack

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore
    from node.protocol.messages import PrePrepare


class TentativeMixin:
    def _try_tentative(self: ReplicaCore) -> None:
        """Execute the next batch tentatively if it prepared in the active view."""
        if not self.cfg.tentative_execution or self._exec.tentative is not None:
            return
        vs = self._vs
        if vs.changing:
            return
        slot = self._log.get(self.last_executed + 1)
        if slot is None or slot.committed is not None or slot.prepared_view != vs.view:
            return
        pp = slot.pre_prepare
        if pp is None or pp.view != vs.view:
            return
        self._run_batch(pp, tentative=True)

    def _execute(self: ReplicaCore, pp: PrePrepare) -> None:
        """Execute the committed batch ``pp`` at ``last_executed + 1``."""
        held = self._exec.tentative
        if held is None:
            self._run_batch(pp, tentative=False)
            return
        if self._exec.settle(pp):
            for req in pp.batch:
                self._forget_request(req.client, req.timestamp)
            self._emit(Executed(pp.seq, pp.view, pp.digest, held.executed))
            return
        self._emit(RolledBack(held.seq, held.view, "other_batch_committed"))
        self._run_batch(pp, tentative=False)

    def _undo_tentative(self: ReplicaCore, reason: str) -> None:
        undone = self._exec.roll_back()
        if undone is not None:
            self._emit(RolledBack(undone.seq, undone.view, reason))
