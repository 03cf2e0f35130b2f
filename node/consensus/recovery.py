"""Crash recovery: build a ``ReplicaCore`` from the records it persisted.

``recover(cfg, me, signer, replica_keys, client_keys, app, stored)`` returns
``(core, actions)``. It restores the stable snapshot (app and client table), then replays
the stored log records view by view into the core's ``Log`` (``replay_log``), without
verifying (they were verified before they were stored) and without sending anything:
pre-prepares are accepted again, votes counted again, prepared certificates and committed
slots rebuilt with the same ``Rules`` the live core uses. Because every pre-prepare this
replica accepted (and, as primary, issued) and every prepare and commit it sent was
persisted before it was sent, the recovered core never accepts a conflicting pre-prepare,
never reuses a sequence number and reports the same prepared certificates in view changes.

Committed means proved by a stored commit certificate, whether the replica gathered it or
received it while catching up. The returned actions then re-execute the committed entries
above the stable checkpoint (``Executed``, replies, ``Checkpoint`` broadcasts identical to
the ones sent before the crash), send the commit of any slot that had prepared but whose
commit was not yet stored, and, if the replica was in a view change, re-broadcast its
``ViewChange`` and re-arm the timer.

``recover`` raises ``ValueError`` if the stored snapshot is not a core snapshot (corrupt
storage): the shell should report that and stop rather than run with a wrong state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from node.app.base import App
from node.consensus.clients import snapshot_digest
from node.consensus.core import ReplicaCore
from node.consensus.events import Action
from node.consensus.log import Log, Slot
from node.consensus.params import CoreConfig
from node.consensus.records import MessageRecord, StoredState
from node.consensus.rules import Rules
from node.protocol.crypto import Signer
from node.protocol.messages import Commit, Prepare, PrePrepare

_RANK = {PrePrepare: 0, Prepare: 1, Commit: 2}


def recover(
    cfg: CoreConfig,
    me: int,
    signer: Signer,
    replica_keys: Mapping[int, bytes],
    client_keys: Mapping[str, bytes],
    app: App,
    stored: StoredState,
    **kwargs: Any,
) -> tuple[ReplicaCore, list[Action]]:
    """A core in the state ``stored`` describes and the actions that resume it
    (``kwargs`` go to ``ReplicaCore``: ``rules``, ``verify_cache``)."""
    core = ReplicaCore(cfg, me, signer, replica_keys, client_keys, app, **kwargs)
    if stored.snapshot is not None and stored.stable_seq > 0:
        core._exec.restore(stored.stable_seq, stored.snapshot)
        core._ckpt.set_stable(
            stored.stable_seq,
            snapshot_digest(stored.snapshot),
            stored.snapshot,
            tuple(stored.proof),
        )
    core._vs.restore(stored.view)
    if stored.new_view is not None and stored.new_view.view == stored.view:
        core._vcs.new_view = stored.new_view
    own_top = replay_log(
        core._log,
        stored.records,
        core.rules,
        me=me,
        view=stored.view,
        window=(core.low_watermark, core.high_watermark),
    )
    core._proposer.skip_to(max(own_top, core.last_executed) + 1)
    return core, core._resume(stored.view_change_to)


def replay_log(
    log: Log,
    records: Iterable[MessageRecord],
    rules: Rules,
    *,
    me: int,
    view: int,
    window: tuple[int, int],
) -> int:
    """Rebuild ``log`` from stored messages inside ``window`` (low, high]: pre-prepares
    (of every view), votes, the highest-view prepared certificate of each slot and every
    slot a stored commit certificate proves committed, however this replica came to hold
    it. Returns the highest sequence number this replica proposed in ``view`` (0: none)."""
    low, high = window
    msgs = [r.msg for r in records if low < r.msg.seq <= high]
    msgs.sort(key=lambda m: (m.view, _RANK[type(m)], m.seq, m.sender))
    pps: dict[int, dict[int, PrePrepare]] = {}
    own_top = 0
    for msg in msgs:
        slot = log.slot(msg.seq)
        kind = type(msg)
        if kind is PrePrepare:
            pps.setdefault(msg.seq, {})[msg.view] = msg
            slot.pre_prepare = msg
            slot.pp_durable = True
            if msg.sender == me and msg.view == view:
                own_top = max(own_top, msg.seq)
        elif kind is Prepare:
            slot.add_prepare(msg)
        else:
            slot.add_commit(msg)
    for seq in sorted(pps):
        _rebuild_slot(log, log.slot(seq), pps[seq], rules)
    log.drop_views_below(view)
    return own_top


def _rebuild_slot(log: Log, slot: Slot, by_view: dict[int, PrePrepare], rules: Rules) -> None:
    for view in sorted(by_view):
        cert = rules.prepared_cert(slot, by_view[view])
        if cert is not None:
            log.mark_prepared(slot, view, cert)
    batches = {pp.digest: pp for _, pp in sorted(by_view.items())}
    for view, digest in sorted(slot.commits):
        commits = rules.commit_cert(slot, view, digest) if digest in batches else None
        if commits is not None:
            slot.committed = batches[digest]
            slot.commit_cert = commits
            break
