"""Client requests, mixed into ``ReplicaCore``: admission, batching, at-most-once execution.

Admission: a request must be signed by a known client principal. For each client session
the core keeps only the newest request not yet executed (clients have one request
outstanding per session); an older timestamp is stale, the timestamp of the last executed
request is a retransmission and is answered from the reply cache. A waiting request keeps
the ``"view_change"`` timer armed (re-armed whenever something executes and requests still
wait, cancelled when none do). Backups forward requests from clients to the primary; a
forwarded request can be lost on the way (a full inbox or fallback queue at an overloaded
primary, a primary that has just been replaced), so half-way through the wait
(``FORWARD_SHARE`` of the timeout, the ``"forward"`` timer) a backup whose requests still
wait and that saw nothing execute forwards the oldest of them (at most ``REFORWARD_MAX``)
again. Requests the primary merely dropped then execute instead of costing a view change
once the overload is over; a primary that ignores them is still replaced on time.

Batching (primary): requests queue in arrival order; a batch is cut as soon as
``batch_max`` requests wait, otherwise when the ``"batch"`` timer (``batch_timeout_s``)
fires, and never above the high watermark: then requests wait until a checkpoint becomes
stable. With ``max_in_flight = k > 0`` the batch is sized by the load instead of a clock:
a partial batch is cut only while fewer than ``k`` of the primary's batches are in flight
(proposed in this view, not yet committed here), at the end of the current round of input
(a zero-delay ``"batch"`` timer); otherwise the requests wait for a batch to commit, and
every request that arrived meanwhile goes into the next batch. Light load gets no batching
delay; heavy load gets large batches, which cost far fewer messages and signatures per
request. ``batch_timeout_s`` is not used then.

Execution: each request of a committed batch executes only if its timestamp is newer than
the session's last executed one; its result is recorded in the replicated client table and
sent to the client. The null request (empty batch) executes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.clients import NEW, RETRANSMISSION
from node.consensus.events import (
    BATCH_TIMER,
    FORWARD_TIMER,
    VIEW_CHANGE_TIMER,
    Executed,
    ReplyToClient,
    Send,
)
from node.consensus.records import MessageRecord
from node.protocol.messages import PrePrepare, Reply, Request, batch_digest

if TYPE_CHECKING:
    from node.consensus.core import ReplicaCore

#: the share of the view-change timeout after which a backup forwards waiting requests again
FORWARD_SHARE = 0.5
#: at most this many waiting requests are forwarded again at once (the oldest first)
REFORWARD_MAX = 512


class RequestMixin:
    # --- requests and batching --------------------------------------------------------

    def _on_request(self: ReplicaCore, req: Request, from_client: bool) -> None:
        if not self._request_ok(req):
            known = req.principal in self._client_keys
            self._reject(req.client, "bad_signature" if known else "unknown_sender")
            return
        status = self._exec.clients.classify(req.client, req.timestamp)
        if status != NEW:
            if status == RETRANSMISSION:
                if from_client:
                    self._resend_reply(req.client)
                held = self._exec.tentative
                if held is not None and req.client in held.rows:
                    self._wait_for_commit(req)
            return
        held = self._pending.get(req.client)
        if held is not None and held.timestamp > req.timestamp:
            return  # superseded by a newer request of the same session
        if held is None and len(self._pending) >= self.cfg.max_pending:
            self._reject(req.client, "overloaded")
            return
        is_new = held is None or held.timestamp < req.timestamp
        if is_new:
            self._pending.pop(req.client, None)
            self._pending[req.client] = req
        if self._vs.changing:
            return  # the view change's own timer runs (views.py)
        if not self._timers.get(VIEW_CHANGE_TIMER):
            self._arm_request_timers()
        if self.primary == self.me:
            if is_new and self._proposer.enqueue(req):
                self._cut_batches(force=False)
        elif from_client:
            self._emit(Send(self.primary, req))

    def _wait_for_commit(self: ReplicaCore, req: Request, arm: bool = True) -> None:
        """``req`` ran tentatively: it stays pending until its batch commits, as a request
        not yet ordered would, and with ``arm`` (it came from the client) arms the
        view-change timer. A request this replica saw only in the pre-prepare arms none
        (PBFT's rule: the timer is for requests a replica received): a backup cut off just
        after it prepared would otherwise start a view change nobody else can join, and
        sit in it, not voting, after the cut heals. The client retransmits to every
        replica if the batch does not reach it, which arms the timers then."""
        held = self._pending.get(req.client)
        if held is None:
            if len(self._pending) >= self.cfg.max_pending:
                return
            self._pending[req.client] = req
        elif held.timestamp < req.timestamp:
            self._pending[req.client] = req
        if arm and not self._vs.changing and not self._timers.get(VIEW_CHANGE_TIMER):
            self._arm_request_timers()

    def _resend_reply(self: ReplicaCore, client: str) -> None:
        cached = self._exec.clients.cached(client)
        if cached is not None:
            ts, result = cached
            held = self._exec.tentative
            tentative = held is not None and client in held.rows
            reply = Reply(self.view, ts, client, self.me, result, tentative)
            self._emit(ReplyToClient(client, reply))

    def _cut_batches(self: ReplicaCore, force: bool) -> None:
        """Primary: turn queued requests into pre-prepares while the window allows."""
        if self._vs.changing or self.primary != self.me:
            return
        cfg = self.cfg
        proposer = self._proposer
        limit = cfg.max_in_flight
        if limit:
            partial_ok = force and self._in_flight(limit) < limit
        else:
            partial_ok = force or cfg.batch_timeout_s == 0
        last_timestamp = self._exec.clients.last_timestamp
        while proposer and proposer.next_seq <= self.high_watermark:
            if len(proposer) < cfg.batch_max and not partial_ok:
                break
            batch = proposer.take_batch(cfg.batch_max, last_timestamp)
            if batch:
                self._propose(tuple(batch))
                if limit and partial_ok:
                    partial_ok = self._in_flight(limit) < limit
        if proposer and proposer.next_seq <= self.high_watermark:
            if limit and self._in_flight(limit) >= limit:
                self._cancel_timer(BATCH_TIMER)  # the next commit cuts the batch
            elif not self._timers.get(BATCH_TIMER):
                self._start_timer(BATCH_TIMER, 0.0 if limit else cfg.batch_timeout_s)
        elif not proposer:
            self._cancel_timer(BATCH_TIMER)

    def _in_flight(self: ReplicaCore, limit: int) -> int:
        """This primary's batches in flight (proposed, not committed here), up to ``limit``."""
        return self._proposer.in_flight(self._log, self.last_executed, limit)

    def _propose(self: ReplicaCore, batch: tuple[Request, ...]) -> None:
        seq = self._proposer.claim(batch)
        pp = self._sign(PrePrepare(self.view, seq, batch_digest(batch), batch, self.me))
        slot = self._log.slot(seq)
        slot.pre_prepare = pp
        slot.pp_durable = True
        self._persist(MessageRecord(pp))
        self._broadcast(pp)
        self._check_prepared(slot)

    def _refresh_request_timer(self: ReplicaCore) -> None:
        """Outside a view change: (re)start the view-change timer while requests wait."""
        if self._vs.changing:
            return
        if self._pending:
            self._arm_request_timers()
        else:
            self._cancel_timer(VIEW_CHANGE_TIMER)
            self._cancel_timer(FORWARD_TIMER)

    def _arm_request_timers(self: ReplicaCore) -> None:
        """Requests wait: the view-change timer, and on a backup the forward timer."""
        timeout = self._vc_timeout()
        self._start_timer(VIEW_CHANGE_TIMER, timeout)
        if self.primary != self.me:
            self._start_timer(FORWARD_TIMER, timeout * FORWARD_SHARE)
        else:
            self._cancel_timer(FORWARD_TIMER)

    def _forward_again(self: ReplicaCore) -> None:
        """The forward timer fired: nothing executed for half the wait; send the oldest
        waiting requests to the primary once more (it may have dropped them)."""
        if self._vs.changing or self.primary == self.me:
            return
        primary = self.primary
        for count, req in enumerate(self._pending.values()):
            if count >= REFORWARD_MAX:
                break
            self._emit(Send(primary, req))

    def _run_batch(self: ReplicaCore, pp: PrePrepare, tentative: bool) -> None:
        """Run ``pp``'s batch and reply; a tentative run keeps its requests pending (they
        are forgotten when it commits, ``tentative.py``) and is not ``Executed`` yet."""
        executed = 0
        view, me = self.view, self.me
        for out in self._exec.execute(pp, tentative):
            if out.result is not None:
                executed += 1
                reply = Reply(view, out.timestamp, out.client, me, out.result, tentative)
                self._emit(ReplyToClient(out.client, reply))
            elif out.retransmission:
                self._resend_reply(out.client)
            if not tentative:
                self._forget_request(out.client, out.timestamp)
        if not tentative:
            self._emit(Executed(pp.seq, pp.view, pp.digest, executed))
            return
        ran = self._exec.tentative
        assert ran is not None
        for req in pp.batch:  # even a backup that saw them only in the pre-prepare
            if req.client in ran.rows:
                self._wait_for_commit(req, arm=False)

    def _forget_request(self: ReplicaCore, client: str, ts: int) -> None:
        held = self._pending.get(client)
        if held is not None and held.timestamp <= ts:
            del self._pending[client]
        self._proposer.forget(client, ts)
