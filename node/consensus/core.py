"""``ReplicaCore``: the sans-I/O PBFT replica state machine, orchestrating its parts.

``core.handle(event) -> list[Action]`` is pure and deterministic: no I/O, no clock (timers
are actions out and ``TimerFired`` events in), no randomness, dict iteration in insertion
or sorted order only. The same events in the same order give the same actions.

The state lives in parts, each the only writer of its own fields (as etcd raft's
``raftLog`` and ``ProgressTracker``): the message ``Log`` (``log.py``), the
``CheckpointTracker`` (``checkpoints.py``), the ``Executor`` with the app, client table and
``last_executed`` (``execution.py``), the primary's ``Proposer`` with its queue and
``next_seq`` (``proposer.py``), the ``ViewState`` and the held ``ViewChanges``
(``viewstate.py``) and the ``PeerReports`` (``reports.py``). The protocol that moves them
is mixed in by topic: the normal case (``normal.py``), client requests and batching
(``requests.py``), checkpoints and state transfer (``transfer.py``), view change
(``views.py``) and synchronisation with peers (``sync.py``); this module holds the
parts, dispatch and the plumbing. ``recovery.recover`` builds a core from its records.

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

from collections.abc import Callable, Mapping
from typing import Any

from node.app.base import App
from node.consensus.checkpoints import CheckpointTracker
from node.consensus.clients import snapshot_digest
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
    StartTimer,
    TimerFired,
)
from node.consensus.execution import Executor
from node.consensus.log import Log
from node.consensus.normal import NormalCaseMixin
from node.consensus.params import CoreConfig
from node.consensus.proposer import Proposer
from node.consensus.quorum import CertContext
from node.consensus.readonly import ReadOnlyMixin, ReadQueue
from node.consensus.reports import PeerReports
from node.consensus.requests import RequestMixin
from node.consensus.rules import Rules
from node.consensus.sync import SyncMixin
from node.consensus.tentative import TentativeMixin
from node.consensus.transfer import CheckpointMixin
from node.consensus.views import ViewChangeMixin
from node.consensus.viewstate import ViewChanges, ViewState
from node.consensus.vote_auth import VoteAuth
from node.protocol.crypto import Signer, VerifyCache, mac_matches, sign_message
from node.protocol.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ReadRequest,
    Request,
    StateRequest,
    StateResponse,
    Status,
    ViewChange,
)


class ReplicaCore(
    NormalCaseMixin,
    RequestMixin,
    TentativeMixin,
    ReadOnlyMixin,
    CheckpointMixin,
    ViewChangeMixin,
    SyncMixin,
):
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
        self.verifier = verify_cache if verify_cache is not None else VerifyCache()
        #: principal -> the MAC key shared with it (None: unusable key), derived on first use
        self._mac_keys: dict[str, bytes | None] = {}
        #: requests in pre-prepares accepted on their authenticator / on their signature
        self.auth_counts = {"mac": 0, "signature": 0}
        #: commit authenticators: sealing the commits sent, checking those received
        self._vote_auth = VoteAuth(signer, me, self._replica_keys, cfg.n)
        self.commit_auth_counts = self._vote_auth.counts
        # the parts, each the only writer of its own fields
        self._exec = Executor(app, self.rules)
        self._log = Log()
        genesis = self._exec.snapshot()
        self._ckpt = CheckpointTracker(
            snapshot_digest(genesis),
            genesis,
            votes_per_sender=cfg.watermark_window // cfg.checkpoint_interval + 2,
        )
        self._proposer = Proposer()
        self._vs = ViewState()
        self._vcs = ViewChanges(future_limit=cfg.watermark_window)
        self._reports = PeerReports()
        self._reads = ReadQueue()
        #: latest not-yet-executed request per client session (drives the view-change timer)
        self._pending: dict[str, Request] = {}
        self._timers: dict[str, bool] = {}
        self._out: list[Action] = []

    # --- read-only status -------------------------------------------------------------

    @property
    def view(self) -> int:
        return self._vs.view

    @property
    def primary(self) -> int:
        return self._vs.view % self.cfg.n

    @property
    def last_executed(self) -> int:
        return self._exec.last_executed

    @property
    def stable_checkpoint(self) -> int:
        return self._ckpt.stable_seq

    @property
    def state_digest(self) -> bytes:
        """The app digest after ``last_executed`` (without a tentative batch)."""
        app = self._exec.app
        return app.savepoint_digest() if self._exec.tentative is not None else app.digest()

    @property
    def tentative_seq(self) -> int | None:
        """The sequence number executed tentatively (prepared, not committed), if any."""
        held = self._exec.tentative
        return held.seq if held is not None else None

    @property
    def app(self) -> App:
        return self._exec.app

    @property
    def in_view_change(self) -> bool:
        return self._vs.changing

    @property
    def view_change_target(self) -> int:
        """The view this replica is changing to (its view when not changing)."""
        return self._vs.active

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
            "queued_requests": len(self._proposer),
            "view_change_msgs": self._vcs.count(),
            "future_pre_prepares": self._vcs.buffered_count(),
            "clients": len(self._exec.clients),
        }

    # --- plumbing ---------------------------------------------------------------------

    def primary_of(self, view: int) -> int:
        return view % self.cfg.n

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _persist(self, *records: Any) -> None:
        if not records:
            return
        out = self._out
        if out and type(out[-1]) is Persist:
            out[-1] = Persist(out[-1].records + records)
        else:
            out.append(Persist(records))

    def _broadcast(self, msg: Any) -> None:
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

    def _signed_commit(self, view: int, seq: int, digest: bytes) -> Commit:
        """This replica's commit: signed, and with a tag for every replica."""
        return self._vote_auth.seal(self._sign(Commit(view, seq, digest, self.me)))

    def _vote_ok(self, vote: Any) -> bool:
        """A prepare's signature verifies; a commit's tag for this replica is valid, or
        else its signature verifies (``vote_auth``)."""
        if type(vote) is Commit and self.cfg.commit_authenticators:
            counts = self._vote_auth.counts
            if self._vote_auth.authentic(vote):
                counts["mac"] += 1
                return True
            counts["signature"] += 1
        return self._sig_ok(vote)

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
        kind = type(event)
        if kind is MessageReceived:
            return self._collect(lambda: self._on_message(event.sender, event.msg))
        if kind is RequestReceived:
            if type(event.request) is ReadRequest:
                return self._collect(lambda: self._on_read(event.request))
            return self._collect(lambda: self._on_request(event.request, from_client=True))
        if kind is TimerFired:
            return self._collect(lambda: self._on_timer(event.timer))
        raise TypeError(f"not an event: {event!r}")

    def _collect(self, step: Callable[[], None]) -> list[Action]:
        """Run one step of the protocol and return the actions it produced, in order."""
        self._out = out = []
        try:
            step()
            self._release_reads()
        finally:
            self._out = []
        return out

    def _on_message(self, sender: int, msg: Any) -> None:
        if type(sender) is not int or not 0 <= sender < self.cfg.n or sender == self.me:
            self._reject(sender, "unknown_sender")
            return
        self._reports.heard(sender)
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
            if self._vs.changing:
                self._start_view_change(self._vs.target + 1, "no_new_view")
            elif self._pending and self._behind():
                # the others are executing: this replica lacks the log, not a primary
                self._start_timer(VIEW_CHANGE_TIMER, self._vc_timeout())
                self._request_fetch(self._cluster_executed(), again=True)
            elif self._pending and self._cut_off():
                self._start_timer(VIEW_CHANGE_TIMER, self._vc_timeout())  # see sync.py
            elif self._pending:
                self._start_view_change(self._vs.view + 1, "timeout")

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
