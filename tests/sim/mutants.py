"""Small realistic bugs for the mutation harness (`python -m tests.sim.mutate`).

Each `Mutant` replaces one exact piece of text (which must occur exactly once) in one file
of `node/consensus/`, `node/app/` or `node/client/decide.py`, and says what the edit breaks. The harness applies
them one at a time to a scratch copy of the tree; the simulation must fail on each.
Mutants that change nothing observable (a check done twice, dead code) are not kept here.
Replaced so far, each for a reason that holds whatever the simulation does:

- a prepared certificate's pre-prepare from any sender, or of a view not below the new
  one: its 2f prepares must still be valid, and correct replicas prepare only the
  digest of the view's real primary, so such a certificate can only repeat a true one;
- a second vote for another digest counted too: quorums of 2f+1 intersect in a correct
  replica, which votes once, so counting a faulty replica twice at one replica changes
  no outcome;
- a NewView from a non-primary accepted by the plan check: `views.py` refuses it before;
- execution after a restart with 2f stored commits: commits of others are stored only
  with a full certificate, so a restart never finds 2f of them.
"""

from __future__ import annotations

from .mutant import Mutant
from .mutants_app import APP_MUTANTS
from .mutants_tentative import TENTATIVE_MUTANTS
from .mutants_votes import VOTE_MUTANTS

__all__ = ["MUTANTS", "Mutant"]


CORE = "node/consensus/core.py"
NORMAL = "node/consensus/normal.py"
EXECUTION = "node/consensus/execution.py"
QUORUM = "node/consensus/quorum.py"
VC = "node/consensus/viewchange.py"
VIEWS = "node/consensus/views.py"
TRANSFER = "node/consensus/transfer.py"
CKPT = "node/consensus/checkpoints.py"
CLIENTS = "node/consensus/clients.py"
REQUESTS = "node/consensus/requests.py"
RECOVERY = "node/consensus/recovery.py"
LOG = "node/consensus/log.py"
RULES = "node/consensus/rules.py"
READONLY = "node/consensus/readonly.py"

CORE_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "ckpt_certified_any_group",
        CKPT,
        "            if len(group) >= quorum:\n                return digest, tuple(group[:quorum])",
        "            if len(group) >= 1:\n                return digest, tuple(group[:quorum])",
        "a checkpoint is stable once 2f+1 replicas voted, whatever digests they voted for",
    ),
    Mutant(
        "nv_gaps_not_filled",
        VC,
        "            entries.append((seq, NULL_DIGEST, ()))",
        "            continue",
        "the new view leaves sequence numbers without a certificate empty instead of "
        "re-issuing the null batch there",
    ),
    Mutant(
        "nv_plan_skips_first",
        VC,
        "    for seq in range(min_s + 1, max_s + 1):",
        "    for seq in range(min_s + 2, max_s + 1):",
        "the new view re-issues nothing for the first sequence number after the checkpoint",
    ),
    Mutant(
        "new_primary_reuses_seq",
        VIEWS,
        "                max(plan.max_s, plan.min_s, stable) + 1,",
        "                max(plan.max_s, plan.min_s, stable),",
        "a new primary proposes its first batch at a sequence number the NewView re-issued",
    ),
    Mutant(
        "restart_reuses_seq",
        RECOVERY,
        "    core._proposer.skip_to(max(own_top, core.last_executed) + 1)",
        "    core._proposer.skip_to(max(own_top, core.last_executed))",
        "a primary that restarts proposes again at the last sequence number it used",
    ),
    Mutant(
        "pp_from_any_replica",
        NORMAL,
        '        if sender != self.primary:\n            self._reject(sender, "not_primary")',
        '        if sender == self.me:\n            self._reject(sender, "not_primary")',
        "a pre-prepare is accepted from a replica that is not the primary",
    ),
    Mutant(
        "second_pp_same_slot",
        NORMAL,
        "        if held is not None and held.view == pp.view:\n"
        '            self._reject(sender, "equivocation")',
        "        if held is not None and held.view > pp.view:\n"
        '            self._reject(sender, "equivocation")',
        "a second, different pre-prepare for the same (view, seq) replaces the first",
    ),
    Mutant(
        "pp_digest_unchecked",
        NORMAL,
        '        if not self.rules.digest_matches(pp):\n            self._reject(sender, "digest_mismatch")'
        "\n            return\n        if held",
        '        if False:\n            self._reject(sender, "digest_mismatch")\n            return\n'
        "        if held",
        "a pre-prepare whose digest does not match its batch is accepted",
    ),
    Mutant(
        "pp_signature_unchecked",
        NORMAL,
        '        if not self._sig_ok(pp):\n            self._reject(sender, "bad_signature")\n'
        "            return\n        if not self.rules.digest_matches(pp):\n"
        '            self._reject(sender, "digest_mismatch")\n            return\n        if held',
        "        if not self.rules.digest_matches(pp):\n"
        '            self._reject(sender, "digest_mismatch")\n            return\n        if held',
        "a pre-prepare's signature is never checked",
    ),
    Mutant(
        "prepared_with_2f_minus_1",
        RULES,
        "        needed = self.quorum() - 1\n",
        "        needed = self.quorum() - 2\n",
        "a batch counts as prepared with one prepare too few",
    ),
    Mutant(
        "committed_with_2f",
        RULES,
        "        if votes is None or len(votes) < quorum:\n            return None\n",
        "        if votes is None or len(votes) < quorum - 1:\n            return None\n",
        "a batch counts as committed with 2f commits",
    ),
    Mutant(
        "commit_of_any_view",
        RULES,
        "        votes = slot.commits.get((view, digest))",
        "        votes = {s: c for (v, d), t in slot.commits.items() if d == digest "
        "for s, c in t.items()}",
        "commits for the same digest from different views are added up",
    ),
    Mutant(
        "vote_signature_unchecked",
        NORMAL,
        '        if not self._vote_ok(vote):\n            self._reject(sender, "bad_signature")',
        '        if False:\n            self._reject(sender, "bad_signature")',
        "prepare and commit votes are counted without checking their signatures",
    ),
    Mutant(
        "request_signature_unchecked",
        NORMAL,
        "            elif self._request_ok(req):",
        "            elif True:",
        "a request in a pre-prepare whose MAC fails is accepted without its signature",
    ),
    Mutant(
        "sig_by_claimed_key_any",
        CORE,
        "self.rules.signed(self.verifier, self._replica_keys.get(msg.sender), msg)",
        "self.rules.signed(self.verifier, self._replica_keys.get(msg.sender, "
        "self._replica_keys.get(0)), msg)",
        "a message from an unknown sender id is checked against replica 0's key",
    ),
    Mutant(
        "duplicate_signers_ok",
        QUORUM,
        "    return len(senders) == len(set(senders))",
        "    return len(senders) >= len(set(senders))",
        "certificates with the same signer twice count it twice",
    ),
    Mutant(
        "ckpt_proof_mixed_digests",
        QUORUM,
        "        if cp.seq != seq or cp.digest != digest or cp.sender",
        "        if cp.seq != seq or cp.sender",
        "a checkpoint proof may mix signatures for different digests",
    ),
    Mutant(
        "prepared_cert_digest_unchecked",
        QUORUM,
        "            or p.digest != pp.digest\n",
        "",
        "a prepared certificate's prepares need not match its pre-prepare's digest",
    ),
    Mutant(
        "prepared_cert_sigs_unchecked",
        QUORUM,
        "    return all(ctx.sig_ok(p) for p in prepares)",
        "    return True",
        "the prepares inside a prepared certificate are not verified",
    ),
    Mutant(
        "vc_signature_unchecked",
        QUORUM,
        "    if not ctx.sig_ok(vc):\n        return False\n    return all(",
        "    return all(",
        "a view-change message's own signature is not checked",
    ),
    Mutant(
        "nv_too_few_view_changes",
        VC,
        "    if not ctx.quorum <= len(vcs) <= ctx.n",
        "    if not ctx.quorum - 1 <= len(vcs) <= ctx.n",
        "a NewView resting on 2f view changes is accepted",
    ),
    Mutant(
        "nv_digests_unchecked",
        VC,
        "pp.seq != seq or pp.digest != digest or pp.sender",
        "pp.seq != seq or pp.sender",
        "a NewView's re-issued pre-prepares need not carry the computed batches",
    ),
    Mutant(
        "nv_vcs_of_other_views",
        VC,
        "    if any(vc.new_view != nv.view for vc in vcs):\n        return None\n",
        "",
        "a NewView may rest on view changes for other views",
    ),
    Mutant(
        "nv_lowest_view_cert",
        VC,
        "            if held is None or pp.view > held.view:",
        "            if held is None or pp.view < held.view:",
        "the new view re-issues the lowest-view prepared certificate instead of the highest",
    ),
    Mutant(
        "nv_lowest_checkpoint",
        VC,
        "    stable_vc = max(vcs, key=lambda vc: vc.stable_seq)",
        "    stable_vc = min(vcs, key=lambda vc: vc.stable_seq)",
        "the new view starts from the lowest reported checkpoint",
    ),
    Mutant(
        "vc_omits_committed_certs",
        VIEWS,
        "        certs = [(s.seq, s.prepared_cert) for s in self._log.slots() if s.prepared_cert]",
        "        certs = [\n            (s.seq, s.prepared_cert)\n            for s in self._log.slots()\n"
        "            if s.prepared_cert and s.committed is None\n        ]",
        "a view change leaves out the prepared certificates of batches already committed here",
    ),
    Mutant(
        "join_on_one_request",
        VIEWS,
        "        if len(highest) >= self.rules.weak_quorum():",
        "        if len(highest) >= 1:",
        "one replica asking for a higher view drags the others along",
    ),
    Mutant(
        "nv_skips_checkpoint",
        VIEWS,
        "        if plan.min_s > stable and plan.stable_digest is not None:\n"
        "            self._adopt_certified_checkpoint(",
        "        if False:\n            self._adopt_certified_checkpoint(",
        "a replica entering a view above its checkpoint never moves to the view's min-s",
    ),
    Mutant(
        "snapshot_digest_unchecked",
        TRANSFER,
        "        if snapshot_digest(resp.snapshot) != digest:",
        "        if False:",
        "a transferred snapshot is installed without checking it against the certified digest",
    ),
    Mutant(
        "transfer_cert_digest_unchecked",
        TRANSFER,
        "            if c.view != view or c.seq != pp.seq or c.digest != pp.digest:",
        "            if c.view != view or c.seq != pp.seq:",
        "a transferred batch's commits need not be for its digest",
    ),
    Mutant(
        "transfer_cert_small",
        TRANSFER,
        "        if not self.rules.quorum() <= len(commits) <= self.cfg.n",
        "        if not 1 <= len(commits) <= self.cfg.n",
        "a transferred batch is executed on one replica's commit",
    ),
    Mutant(
        "transfer_batch_unchecked",
        TRANSFER,
        "        if not self.rules.digest_matches(pp):\n            return False\n        return all(",
        "        return all(",
        "a transferred batch need not hash to the digest its commits name",
    ),
    Mutant(
        "transfer_cert_sigs_unchecked",
        TRANSFER,
        "        return all(self._sig_ok(c) for c in commits)",
        "        return True",
        "the commits of a transferred batch are not verified",
    ),
    Mutant(
        "transfer_proof_unchecked",
        TRANSFER,
        "            digest = check_checkpoint_proof(resp.proof, seq, self._certs())\n"
        "            if digest is None:",
        "            digest = resp.proof[0].digest\n            if digest is None:",
        "a checkpoint proof in a state response is trusted without checking it",
    ),
    Mutant(
        "checkpoint_quorum_2f",
        CKPT,
        "            if len(group) >= quorum:",
        "            if len(group) >= quorum - 1:",
        "a checkpoint becomes stable with 2f matching votes",
    ),
    Mutant(
        "checkpoint_signature_unchecked",
        TRANSFER,
        '        if not self._sig_ok(cp):\n            self._reject(sender, "bad_signature")',
        '        if False:\n            self._reject(sender, "bad_signature")',
        "checkpoint votes are counted without checking their signatures",
    ),
    Mutant(
        "client_table_off_by_one",
        EXECUTION,
        "                clients.record(client, ts, result)",
        "                clients.record(client, ts - 1, result)",
        "the client table records the timestamp before the executed one, so a "
        "retransmission executes again",
    ),
    Mutant(
        "retransmission_reexecuted",
        CLIENTS,
        "        if timestamp > last:\n            return NEW",
        "        if timestamp >= last:\n            return NEW",
        "a retransmitted request executes again (at-most-once broken)",
    ),
    Mutant(
        "snapshot_without_clients",
        CLIENTS,
        "    return msgpack.packb([SNAPSHOT_VERSION, app_snapshot, clients.to_wire()])",
        "    return msgpack.packb([SNAPSHOT_VERSION, app_snapshot, []])",
        "checkpoints lose the client table, so a replica restored from one re-executes",
    ),
    Mutant(
        "checkpoint_off_interval",
        NORMAL,
        "            if self.last_executed % self.cfg.checkpoint_interval == 0:",
        "            if self.last_executed % self.cfg.checkpoint_interval == 1:",
        "checkpoints are taken one sequence number late and never become stable",
    ),
    Mutant(
        "read_ignores_prepared",
        READONLY,
        "        target = self._log.prepared_top\n",
        "        target = self.last_executed\n",
        "a read is answered from whatever was executed, not after what was prepared",
    ),
    Mutant(
        "read_before_executed_state",
        READONLY,
        "            for read in self._reads.ready(self.last_executed):",
        "            for read in self._reads.ready(self.last_executed + 1_000_000):",
        "waiting reads are answered at once after any step",
    ),
)

MUTANTS: tuple[Mutant, ...] = CORE_MUTANTS + APP_MUTANTS + TENTATIVE_MUTANTS + VOTE_MUTANTS
