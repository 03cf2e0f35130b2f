"""Crash recovery, mixed into ``ReplicaCore``: rebuild a core from ``StoredState``.

``ReplicaCore.recover(cfg, me, signer, replica_keys, client_keys, app, stored)`` returns
``(core, actions)``. It restores the stable snapshot (app and client table), then replays
the stored log records view by view, without verifying (they were verified before they were
stored) and without sending anything: pre-prepares are accepted again, votes counted again,
prepared certificates and committed slots rebuilt. Because every pre-prepare this replica
accepted (and, as primary, issued) and every prepare and commit it sent was persisted before
it was sent, the recovered core never accepts a conflicting pre-prepare, never reuses a
sequence number and reports the same prepared certificates in view changes.

Committed means proved by a stored commit certificate, whether the replica gathered it or
received it while catching up. The returned actions then re-execute the committed entries
above the stable checkpoint
(``Executed``, replies, ``Checkpoint`` broadcasts identical to the ones sent before the
crash), send the commit of any slot that had prepared but whose commit was not yet stored,
and, if the replica was in a view change, re-broadcast its ``ViewChange`` and re-arm the
timer.

``recover`` raises ``ValueError`` if the stored snapshot is not a core snapshot (corrupt
storage): the shell should report that and stop rather than run with a wrong state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from node.app.base import App
from node.consensus.clients import decode_snapshot, snapshot_digest
from node.consensus.events import Action
from node.consensus.log import Slot
from node.consensus.params import CoreConfig
from node.consensus.records import MessageRecord, StoredState
from node.protocol.crypto import Signer
from node.protocol.messages import Commit, Prepare, PrePrepare

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore

_RANK = {PrePrepare: 0, Prepare: 1, Commit: 2}


class RecoveryMixin:
    @classmethod
    def recover(
        cls,
        cfg: CoreConfig,
        me: int,
        signer: Signer,
        replica_keys: Mapping[int, bytes],
        client_keys: Mapping[str, bytes],
        app: App,
        stored: StoredState,
        **kwargs: Any,
    ) -> tuple[ReplicaCore, list[Action]]:
        core: ReplicaCore = cls(cfg, me, signer, replica_keys, client_keys, app, **kwargs)  # type: ignore[assignment]
        return core, core._recover(stored)

    def _recover(self: ReplicaCore, stored: StoredState) -> list[Action]:
        self._out = out = []
        if stored.snapshot is not None and stored.stable_seq > 0:
            app_snapshot, clients = decode_snapshot(stored.snapshot)
            self.app.restore(app_snapshot)
            self._clients = clients
            self._last_executed = stored.stable_seq
            self._ckpt.set_stable(
                stored.stable_seq,
                snapshot_digest(stored.snapshot),
                stored.snapshot,
                tuple(stored.proof),
            )
        self._view = self._vc_target = stored.view
        if stored.new_view is not None and stored.new_view.view == stored.view:
            self._new_view_msg = stored.new_view
        self._replaying = True
        try:
            self._replay(stored.records)
        finally:
            self._replaying = False
        self._recovering = True
        if stored.view_change_to is not None and stored.view_change_to > self._view:
            self._start_view_change(stored.view_change_to, "restart")
        else:
            self._resume_commits()
        self._execute_ready()
        self._arm_status()
        self._out = []
        return out

    def _replay(self: ReplicaCore, records: list[MessageRecord]) -> None:
        """Rebuild the log from stored messages: pre-prepares (of every view), votes, the
        highest-view prepared certificate of each slot and every slot a stored commit
        certificate proves committed, however this replica came to hold it."""
        low, high = self._ckpt.stable_seq, self.high_watermark
        msgs = [r.msg for r in records if low < r.msg.seq <= high]
        msgs.sort(key=lambda m: (m.view, _RANK[type(m)], m.seq, m.sender))
        pps: dict[int, dict[int, PrePrepare]] = {}
        for msg in msgs:
            slot = self._log.slot(msg.seq)
            kind = type(msg)
            if kind is PrePrepare:
                pps.setdefault(msg.seq, {})[msg.view] = msg
                slot.pre_prepare = msg
                slot.pp_durable = True
                if msg.sender == self.me and msg.view == self._view:
                    self._next_seq = max(self._next_seq, msg.seq + 1)
            elif kind is Prepare:
                slot.add_prepare(msg)
            else:
                slot.add_commit(msg)
        for seq in sorted(pps):
            self._rebuild_slot(self._log.slot(seq), pps[seq])
        self._log.drop_views_below(self._view)
        self._next_seq = max(self._next_seq, self._last_executed + 1)

    def _rebuild_slot(self: ReplicaCore, slot: Slot, by_view: dict[int, PrePrepare]) -> None:
        for view in sorted(by_view):
            cert = self.rules.prepared_cert(slot, by_view[view])
            if cert is not None:
                slot.prepared_cert = cert
                slot.prepared_view = view
        batches = {pp.digest: pp for _, pp in sorted(by_view.items())}
        for view, digest in sorted(slot.commits):
            commits = self.rules.commit_cert(slot, view, digest) if digest in batches else None
            if commits is not None:
                slot.committed = batches[digest]
                slot.commit_cert = commits
                break

    def _resume_commits(self: ReplicaCore) -> None:
        """Send the commit of slots that prepared in this view before the crash but whose
        own commit was not stored (so it was never sent)."""
        view = self._view
        for slot in self._log.slots():
            if slot.prepared_view == view and not slot.has_commit_from(view, self.me):
                pp = slot.pre_prepare
                assert pp is not None
                commit = self._sign(Commit(view, pp.seq, pp.digest, self.me))
                slot.add_commit(commit)
                self._persist(MessageRecord(commit))
                self._broadcast(commit)
                self._check_committed(slot)
