"""``ReplicaCore``: the sans-I/O PBFT replica state machine.

``core.handle(event) -> list[Action]`` is pure and deterministic: no I/O, no clock (timers
are actions out and ``TimerFired`` events in), no randomness, dict iteration in insertion
or sorted order only. The same events in the same order give the same actions.

Protocol (Castro & Liskov, PBFT):

- normal case: the primary batches requests (a batch is cut when ``batch_max`` requests
  wait, or when the ``"batch"`` timer fires) into a signed ``PrePrepare`` for the next
  sequence number inside the watermarks ``(h, h + watermark_window]``; backups check it
  and broadcast ``Prepare``; ``pre-prepare + 2f prepares`` = prepared, then ``Commit``;
  ``2f + 1`` commits = committed; batches execute in sequence order, at most once per
  ``(client session, timestamp)``, with the last reply per session cached and resent;
- client requests and batching (``requests.py``), checkpoints and state transfer
  (``transfer.py``), view change (``views.py``) and crash recovery (``recovery.py``) are
  mixed in from their modules; this module holds the state, dispatch and the normal case.

The protocol's rules (quorum sizes, prepared and committed certificates, digest, signature,
view-change and new-view checks, at-most-once) are the injected ``rules.Rules`` object;
the simulation plants a bug by passing a subclass. A backup first tries a request's
authenticator (``_mac_ok``) for requests it finds in a pre-prepare; the primary always
checks signatures of what it orders, so a client whose tags are bad for some backups only
costs those backups a verification.

Rejected inputs produce ``Rejected(sender, reason)`` with a reason from
``events.REJECT_REASONS``; inputs that are merely old or duplicates are dropped silently.
Memory is bounded: the log and votes live between the watermarks, checkpoint votes and
view changes are capped per sender, pending requests at ``cfg.max_pending``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from node.app.base import App
from node.consensus.checkpoints import CheckpointTracker
from node.consensus.clients import (
    ClientTable,
    encode_snapshot,
    snapshot_digest,
)
from node.consensus.events import (
    BATCH_TIMER,
    FORWARD_TIMER,
    STATUS_TIMER,
    VIEW_CHANGE_TIMER,
    Action,
    Broadcast,
    CancelTimer,
    Event,
    MessageReceived,
    Persist,
    Rejected,
    RequestReceived,
    SnapshotTaken,
    StartTimer,
    TimerFired,
)
from node.consensus.log import EQUIVOCATION, Log, Slot
from node.consensus.log import NEW as NEW_VOTE
from node.consensus.params import CoreConfig
from node.consensus.quorum import CertContext
from node.consensus.records import MessageRecord
from node.consensus.recovery import RecoveryMixin
from node.consensus.requests import RequestMixin
from node.consensus.rules import Rules
from node.consensus.sync import SyncMixin
from node.consensus.transfer import CheckpointMixin
from node.consensus.views import ViewChangeMixin
from node.protocol.crypto import Signer, VerifyCache, mac_matches, sign_message
from node.protocol.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    Request,
    StateRequest,
    StateResponse,
    Status,
    ViewChange,
)


class ReplicaCore(RequestMixin, CheckpointMixin, ViewChangeMixin, SyncMixin, RecoveryMixin):
    def __init__(
        self,
        cfg: CoreConfig,
        me: int,
        signer: Signer,
        replica_keys: Mapping[int, bytes],
        client_keys: Mapping[str, bytes],
        app: App,
        *,
        verify_cache: VerifyCache | None = None,
        rules: Rules | None = None,
    ) -> None:
        if not 0 <= me < cfg.n:
            raise ValueError(f"replica id {me} not in 0..{cfg.n - 1}")
        missing = [i for i in range(cfg.n) if i not in replica_keys]
        if missing:
            raise ValueError(f"no public key for replicas {missing}")
        self.cfg = cfg
        self.me = me
        #: quorum sizes and certificate checks (tests pass a subclass to plant a bug)
        self.rules = rules if rules is not None else Rules(cfg.f)
        self._signer = signer
        self._replica_keys = dict(replica_keys)
        self._client_keys = dict(client_keys)
        self.app = app
        self.verifier = verify_cache if verify_cache is not None else VerifyCache()
        #: principal -> the MAC key shared with it (None: unusable key), derived on first use
        self._mac_keys: dict[str, bytes | None] = {}
        #: requests in pre-prepares accepted on their authenticator / on their signature
        self.auth_counts = {"mac": 0, "signature": 0}
        self._view = 0
        self._in_vc = False
        self._vc_target = 0
        self._vc_failures = 0
        self._last_executed = 0
        self._log = Log()
        self._clients = ClientTable()
        genesis = encode_snapshot(app.snapshot(), self._clients)
        self._ckpt = CheckpointTracker(
            snapshot_digest(genesis),
            genesis,
            votes_per_sender=cfg.watermark_window // cfg.checkpoint_interval + 2,
        )
        #: latest not-yet-executed request per client session (drives the view-change timer)
        self._pending: dict[str, Request] = {}
        #: primary: requests to put into batches, by session, in arrival order
        self._queue: OrderedDict[str, Request] = OrderedDict()
        #: primary: (session, timestamp) of requests in this view's unexecuted pre-prepares
        self._proposed: set[tuple[str, int]] = set()
        self._next_seq = 1
        self._timers: dict[str, bool] = {}
        self._out: list[Action] = []
        self._replaying = False
        self._init_views()
        self._init_sync()

    # --- read-only status -------------------------------------------------------------

    @property
    def view(self) -> int:
        return self._view

    @property
    def primary(self) -> int:
        return self._view % self.cfg.n

    @property
    def last_executed(self) -> int:
        return self._last_executed

    @property
    def stable_checkpoint(self) -> int:
        return self._ckpt.stable_seq

    @property
    def state_digest(self) -> bytes:
        """The app digest after ``last_executed``."""
        return self.app.digest()

    @property
    def in_view_change(self) -> bool:
        return self._in_vc

    @property
    def view_change_target(self) -> int:
        """The view this replica is changing to (its view when not changing)."""
        return self._vc_target if self._in_vc else self._view

    @property
    def pending_count(self) -> int:
        """Client requests this replica tracks that have not executed yet."""
        return len(self._pending)

    @property
    def low_watermark(self) -> int:
        return self._ckpt.stable_seq

    @property
    def high_watermark(self) -> int:
        return self._ckpt.stable_seq + self.cfg.watermark_window

    def memory_footprint(self) -> dict[str, int]:
        """Sizes of the bounded structures (for tests and /status debugging)."""
        return {
            "log_slots": len(self._log),
            "checkpoint_votes": self._ckpt.vote_count(),
            "own_checkpoints": len(self._ckpt.own_seqs()),
            "pending_requests": len(self._pending),
            "queued_requests": len(self._queue),
            "view_change_msgs": sum(len(v) for v in self._vcs.values()),
            "future_pre_prepares": len(self._future_pps),
            "clients": len(self._clients),
        }

    # --- plumbing ---------------------------------------------------------------------

    def primary_of(self, view: int) -> int:
        return view % self.cfg.n

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _persist(self, *records: Any) -> None:
        if self._replaying or not records:
            return
        out = self._out
        if out and type(out[-1]) is Persist:
            out[-1] = Persist(out[-1].records + records)
        else:
            out.append(Persist(records))

    def _broadcast(self, msg: Any) -> None:
        if not self._replaying:
            self._out.append(Broadcast(msg))

    def _reject(self, sender: int | str, reason: str) -> None:
        self._out.append(Rejected(sender, reason))

    def _sign(self, msg: Any) -> Any:
        return sign_message(msg, self._signer)

    def _start_timer(self, name: str, delay_s: float) -> None:
        self._timers[name] = True
        self._out.append(StartTimer(name, delay_s))

    def _cancel_timer(self, name: str) -> None:
        if self._timers.get(name):
            self._timers[name] = False
            self._out.append(CancelTimer(name))

    def _sig_ok(self, msg: Any) -> bool:
        """The message's sender is a replica and its signature verifies."""
        return self.rules.signed(self.verifier, self._replica_keys.get(msg.sender), msg)

    def _request_ok(self, request: Request) -> bool:
        key = self._client_keys.get(request.principal)
        return self.rules.request_ok(self.verifier, key, request)

    def _mac_ok(self, request: Request) -> bool:
        """This replica's entry of the request's authenticator is the client's tag."""
        auth = request.auth
        if len(auth) != self.cfg.n:
            return False
        principal = request.principal
        mac_keys = self._mac_keys
        if principal in mac_keys:
            key = mac_keys[principal]
        else:
            public = self._client_keys.get(principal)
            if public is None:
                return False  # not cached: the table stays bounded by the known clients
            key = mac_keys[principal] = self._signer.mac_key(public, principal, self.me)
        return key is not None and mac_matches(key, request.payload_digest, auth[self.me])

    def _certs(self) -> CertContext:
        return CertContext(
            n=self.cfg.n,
            quorum=self.rules.quorum(),
            checkpoint_interval=self.cfg.checkpoint_interval,
            watermark_window=self.cfg.watermark_window,
            sig_ok=self._sig_ok,
            digest_ok=self.rules.digest_matches,
        )

    # --- events -----------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        self._out = out = []
        if type(event) is MessageReceived:
            self._on_message(event.sender, event.msg)
        elif type(event) is RequestReceived:
            self._on_request(event.request, from_client=True)
        elif type(event) is TimerFired:
            self._on_timer(event.timer)
        else:
            raise TypeError(f"not an event: {event!r}")
        self._out = []
        return out

    def _on_message(self, sender: int, msg: Any) -> None:
        if type(sender) is not int or not 0 <= sender < self.cfg.n or sender == self.me:
            self._reject(sender, "unknown_sender")
            return
        self._heard[sender] = self._tick
        kind = type(msg)
        if kind is Request:
            self._on_request(msg, from_client=False)
            return
        handler = self._HANDLERS.get(kind)
        if handler is None:
            self._reject(sender, "unexpected_message")
            return
        if msg.sender != sender and kind is not NewView:  # a NewView may be relayed
            self._reject(sender, "sender_mismatch")
            return
        handler(self, sender, msg)

    def _on_timer(self, name: str) -> None:
        if not self._timers.get(name):
            return  # cancelled or unknown: a stale firing
        self._timers[name] = False
        if name == BATCH_TIMER:
            self._cut_batches(force=True)
        elif name == STATUS_TIMER:
            self._on_status_tick()
        elif name == FORWARD_TIMER:
            self._forward_again()
        elif name == VIEW_CHANGE_TIMER:
            if self._in_vc:
                self._start_view_change(self._vc_target + 1, "no_new_view")
            elif self._pending and self._behind():
                # the others are executing: this replica lacks the log, not a primary
                self._start_timer(VIEW_CHANGE_TIMER, self._vc_timeout())
                self._request_fetch(self._cluster_executed(), again=True)
            elif self._pending and self._cut_off():
                self._start_timer(VIEW_CHANGE_TIMER, self._vc_timeout())  # see sync.py
            elif self._pending:
                self._start_view_change(self._view + 1, "timeout")

    # --- normal case ------------------------------------------------------------------

    def _vote_view_ok(self, sender: int, view: int) -> bool | None:
        """True: process; False: keep the vote but the view is not active (one being
        entered, or the one being left: its commits still prove batches); None: drop."""
        active = self._vc_target if self._in_vc else self._view
        if view == active:
            return not self._in_vc
        if self._in_vc and self._view <= view < active:
            return False  # a view this replica left (or missed) still commits batches
        if view < active:
            return None  # merely old
        if not self._in_vc and view == self._view + 1:
            return False  # a new view may be starting: keep for when it does
        self._reject(sender, "wrong_view")
        return None

    def _seq_ok(self, sender: int, seq: int) -> bool:
        if seq <= self.low_watermark:
            return False  # merely old
        if seq > self.high_watermark:
            self._reject(sender, "out_of_window")
            return False
        return True

    def _on_pre_prepare(self, sender: int, pp: PrePrepare) -> None:
        if self._in_vc and self._view <= pp.view < self._vc_target:
            self._learn_pre_prepare(sender, pp)
            return
        if self._in_vc or pp.view != self._view:
            # Not the active view: old (drop), the view being entered (keep), or wrong.
            upcoming = self._vc_target if self._in_vc else self._view + 1
            if pp.view < upcoming:
                return
            if pp.view == upcoming:
                self._buffer_future_pre_prepare(sender, pp)
            else:
                self._reject(sender, "wrong_view")
            return
        if sender != self.primary:
            self._reject(sender, "not_primary")
            return
        if not self._seq_ok(sender, pp.seq):
            return
        slot = self._log.slot(pp.seq)
        held = slot.pre_prepare
        if held is not None and held.view == pp.view and held.digest == pp.digest:
            return  # duplicate
        if not self._sig_ok(pp):
            self._reject(sender, "bad_signature")
            return
        if not self.rules.digest_matches(pp):
            self._reject(sender, "digest_mismatch")
            return
        if held is not None and held.view == pp.view:
            self._reject(sender, "equivocation")
            return
        counts = self.auth_counts
        for req in pp.batch:
            if self._mac_ok(req):
                counts["mac"] += 1
            elif self._request_ok(req):
                counts["signature"] += 1
            else:
                self._reject(sender, "bad_signature")
                return
        self._accept_pre_prepare(slot, pp)

    def _learn_pre_prepare(self, sender: int, pp: PrePrepare) -> None:
        """In a view change: keep a pre-prepare of a view below the target (the one being
        left, or one this replica missed) without voting for it, so that its batch
        executes if 2f + 1 commits prove it committed."""
        if sender != self.primary_of(pp.view) or not self._seq_ok(sender, pp.seq):
            return
        slot = self._log.slot(pp.seq)
        held = slot.pre_prepare
        if slot.committed is not None or (held is not None and held.view >= pp.view):
            return  # known, or equivocation that cannot matter: nothing is voted here
        if not self.rules.digest_matches(pp):
            self._reject(sender, "digest_mismatch")
            return
        if not self._sig_ok(pp):
            self._reject(sender, "bad_signature")
            return
        slot.pre_prepare = pp
        slot.pp_durable = False
        self._check_committed(slot)

    def _accept_pre_prepare(self, slot: Slot, pp: PrePrepare) -> None:
        """Backup: log ``pp`` (already checked) and vote for it."""
        slot.pre_prepare = pp
        slot.pp_durable = True
        prepare = self._sign(Prepare(pp.view, pp.seq, pp.digest, self.me))
        slot.add_prepare(prepare)
        self._persist(MessageRecord(pp), MessageRecord(prepare))
        self._broadcast(prepare)
        self._check_prepared(slot)

    def _on_vote(self, sender: int, vote: Prepare | Commit) -> None:
        active = self._vote_view_ok(sender, vote.view)
        if active is None or not self._seq_ok(sender, vote.seq):
            return
        is_prepare = type(vote) is Prepare
        if is_prepare and sender == self.primary_of(vote.view):
            self._reject(sender, "wrong_role")
            return
        slot = self._log.get(vote.seq)
        index = (
            (slot.prepare_votes if is_prepare else slot.commit_votes) if slot is not None else None
        )
        if index is not None and index.get((vote.view, sender)) == vote.digest:
            return  # duplicate
        if not self._sig_ok(vote):
            self._reject(sender, "bad_signature")
            return
        slot = self._log.slot(vote.seq)
        outcome = slot.add_prepare(vote) if is_prepare else slot.add_commit(vote)  # type: ignore[arg-type]
        if outcome == EQUIVOCATION:
            self._reject(sender, "equivocation")
            return
        if outcome != NEW_VOTE:
            return
        # Another replica's vote is written only with the certificate it completes
        # (`_check_prepared`, `_check_committed`): until then nothing this replica sends
        # depends on it, and losing it in a crash is losing it in the network.
        if active:
            if is_prepare:
                self._check_prepared(slot)
            else:
                self._check_committed(slot)
        elif not is_prepare and self._in_vc:
            self._check_committed(slot)  # a view below the target still commits batches

    def _check_prepared(self, slot: Slot) -> None:
        pp = slot.pre_prepare
        view = self._view
        if pp is None or pp.view != view or self._in_vc:
            return
        if slot.prepared_view != view:
            cert = self.rules.prepared_cert(slot, pp)
            if cert is None:
                return
            slot.prepared_cert = cert
            slot.prepared_view = view
            # the certificate is durable before the commit that claims it is sent
            self._persist(*(MessageRecord(p) for p in cert.prepares if p.sender != self.me))
            if not slot.has_commit_from(view, self.me):
                commit = self._sign(Commit(view, pp.seq, pp.digest, self.me))
                slot.add_commit(commit)
                self._persist(MessageRecord(commit))
                self._broadcast(commit)
        self._check_committed(slot)

    def _check_committed(self, slot: Slot) -> None:
        """Committed: the pre-prepare and 2f + 1 matching commits of its view. Those prove
        that f + 1 correct replicas prepared the batch, whether or not this one did."""
        pp = slot.pre_prepare
        if slot.committed is not None or pp is None:
            return
        cert = self.rules.commit_cert(slot, pp.view, pp.digest)
        if cert is None:
            return
        votes = slot.commits.get((pp.view, pp.digest), {})
        slot.committed = pp
        slot.commit_cert = cert
        # the commit certificate is durable before anything it lets this replica do
        # (execute, reply) leaves it
        if not slot.pp_durable:
            slot.pp_durable = True
            self._persist(MessageRecord(pp))
        self._persist(*(MessageRecord(votes[s]) for s in sorted(votes) if s != self.me))
        self._execute_ready()

    # --- execution --------------------------------------------------------------------

    def _execute_ready(self) -> None:
        progressed = False
        while True:
            slot = self._log.get(self._last_executed + 1)
            if slot is None or slot.committed is None:
                break
            self._execute(slot.committed)
            progressed = True
            if self._last_executed % self.cfg.checkpoint_interval == 0:
                self._take_checkpoint()
        if progressed:
            self._vc_failures = 0
            self._fetch_progress()
            self._refresh_request_timer()
            if self.cfg.max_in_flight and self._queue:
                self._cut_batches(force=False)  # a batch left the pipeline: room for the next

    def _take_checkpoint(self) -> None:
        seq = self._last_executed
        snapshot = encode_snapshot(self.app.snapshot(), self._clients)
        digest = snapshot_digest(snapshot)
        self._ckpt.record_own(seq, digest, snapshot)
        if not self._replaying:
            self._emit(SnapshotTaken(seq, digest, snapshot))
        cp = self._sign(Checkpoint(seq, digest, self.me))
        self._ckpt.add_vote(cp)
        self._broadcast(cp)
        self._check_stable(seq)

    _HANDLERS: dict[type, Any] = {}


ReplicaCore._HANDLERS = {
    PrePrepare: ReplicaCore._on_pre_prepare,
    Prepare: ReplicaCore._on_vote,
    Commit: ReplicaCore._on_vote,
    Checkpoint: ReplicaCore._on_checkpoint,
    ViewChange: ReplicaCore._on_view_change,
    NewView: ReplicaCore._on_new_view,
    StateRequest: ReplicaCore._on_state_request,
    StateResponse: ReplicaCore._on_state_response,
    Status: ReplicaCore._on_status,
}
