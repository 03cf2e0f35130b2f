"""Mutants of tentative execution (`node/consensus/tentative.py` and what it leans on):
each a small realistic bug the simulation must catch."""

from __future__ import annotations

from .mutant import Mutant

TENTATIVE = "node/consensus/tentative.py"
EXECUTION = "node/consensus/execution.py"
REQUESTS = "node/consensus/requests.py"
VIEWS = "node/consensus/views.py"
DECIDE = "node/client/decide.py"

TENTATIVE_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "tentative_before_prepared",
        TENTATIVE,
        "        if slot is None or slot.committed is not None or slot.prepared_view != vs.view:\n",
        "        if slot is None or slot.committed is not None:\n",
        "the next batch runs tentatively (and replies) once its pre-prepare is accepted, "
        "before it prepared",
    ),
    Mutant(
        "tentative_kept_through_view_change",
        VIEWS,
        '        self._undo_tentative("view_change")\n',
        "",
        "a view change leaves the tentative batch applied (its requests look executed to "
        "the new primary)",
    ),
    Mutant(
        "settle_ignores_digest",
        EXECUTION,
        "        if held.seq == pp.seq and held.digest == pp.digest:",
        "        if held.seq == pp.seq:",
        "any batch committed at the tentative batch's seq is taken for it",
    ),
    Mutant(
        "rollback_keeps_client_rows",
        EXECUTION,
        "        for client, row in held.rows.items():\n            self.clients.restore_row(client, row)\n",
        "",
        "an undone batch leaves its requests in the client table as executed",
    ),
    Mutant(
        "tentative_requests_not_waiting",
        REQUESTS,
        "            if req.client in ran.rows:\n                self._wait_for_commit(req, arm=False)",
        "            pass",
        "a backup that ran a batch tentatively keeps none of its requests pending, so a "
        "rollback or a client's retransmission finds nothing waiting",
    ),
    Mutant(
        "client_counts_tentative_as_committed",
        DECIDE,
        "    return sum(1 for r in committed.values() if r == result) >= f + 1",
        "    return sum(1 for r in replies.values() if r == result) >= f + 1",
        "the client decides a write on f + 1 matching replies, tentative ones included",
    ),
)
