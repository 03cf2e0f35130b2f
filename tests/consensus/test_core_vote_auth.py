"""Commit authenticators: a replica counts a commit on its own tag without verifying the
signature, falls back to the signature when the tag is wrong, and never hands a third
party (a state transfer) a commit certificate with a signature that does not verify."""

from __future__ import annotations

import attrs

from node.consensus.events import MessageReceived, Rejected, Send
from node.consensus.vote_auth import VoteAuth
from node.protocol.crypto import MAC_LEN, sign_message
from node.protocol.messages import Commit, StateRequest, StateResponse
from tests.consensus.core_helpers import (
    Net,
    config,
    make_core,
    put,
    replica_keys,
    replica_signer,
    run_requests,
)

CFG = config()
D = bytes(range(32))


def sealed(sender: int, view: int = 0, seq: int = 1, digest: bytes = D) -> Commit:
    auth = VoteAuth(replica_signer(sender), sender, replica_keys(4), 4)
    return auth.seal(sign_message(Commit(view, seq, digest, sender), replica_signer(sender)))


def test_the_pair_shares_one_key_of_its_own() -> None:
    a, b = replica_signer(1), replica_signer(2)
    keys = replica_keys(4)
    assert a.vote_key(keys[2], 1, 2) == b.vote_key(keys[1], 2, 1)
    assert a.vote_key(keys[2], 1, 2) != a.vote_key(keys[3], 1, 3)
    assert a.vote_key(keys[2], 1, 2) != a.mac_key(keys[2], "client", 2)


def test_a_commit_carries_a_tag_per_replica_and_counts_on_it() -> None:
    net = Net.build(CFG)
    run_requests(net, [put("client/a", 1, "k", "v")])
    assert all(core.last_executed == 1 for core in net.cores.values())
    sent = [a.msg for a in net.events[1] if type(getattr(a, "msg", None)) is Commit]
    assert sent and len(sent[0].auth) == 4 and all(len(t) == MAC_LEN for t in sent[0].auth)
    assert sent[0].auth[1] == bytes(MAC_LEN)  # no tag for itself
    for core in net.cores.values():
        assert core.commit_auth_counts == {"mac": 3, "signature": 0}


def test_a_wrong_tag_falls_back_to_the_signature() -> None:
    core = make_core(CFG, 0)
    good = sealed(1)
    forged_tag = attrs.evolve(good, auth=tuple(bytes(MAC_LEN) for _ in range(4)))
    core.handle(MessageReceived(1, forged_tag))
    assert core.commit_auth_counts == {"mac": 0, "signature": 1}
    assert core._log.get(1).commit_count(0, D) == 1  # counted, on its signature


def test_a_commit_with_neither_a_tag_nor_a_signature_is_rejected() -> None:
    core = make_core(CFG, 0)
    bad = attrs.evolve(sealed(1), signature=bytes(64), auth=())
    actions = core.handle(MessageReceived(1, bad))
    assert any(type(a) is Rejected and a.reason == "bad_signature" for a in actions)
    assert core._log.get(1) is None or core._log.get(1).commit_count(0, D) == 0


def test_a_state_transfer_never_serves_a_bad_signature_counted_on_its_tag() -> None:
    """Replica 3 pairs valid tags with bad signatures. Its commits still count at the
    others (the tag proves them its), but a certificate served to a laggard is built of
    commits whose signatures verify, and with too few of those nothing is served."""
    net = Net.build(CFG)
    bad_signer = VoteAuth(replica_signer(3), 3, replica_keys(4), 4)

    def garble(sender: int, to: int, msg: object) -> bool:
        if sender == 3 and type(msg) is Commit and msg.signature != bytes(64):
            net.queue.append((3, to, bad_signer.seal(attrs.evolve(msg, signature=bytes(64)))))
            return True
        return False

    net.drop = garble
    run_requests(net, [put("client/a", 1, "k", "v")])
    core = net.cores[0]
    assert core.last_executed == 1
    slot = core._log.get(1)
    assert slot.commit_count(slot.committed.view, slot.committed.digest) == 4
    served = core.handle(MessageReceived(2, StateRequest(0, 2)))
    entries = [e for a in served if type(a) is Send for e in a.msg.entries]
    assert len(entries) == 1 and 3 not in {c.sender for c in entries[0].commits}
    # with the commit of 2 gone too, only 0, 1 and 3 are held: 3's signature is bad
    del slot.commits[(slot.committed.view, slot.committed.digest)][2]
    slot.commit_cert, slot.cert_provable = (
        tuple(slot.commits[(slot.committed.view, slot.committed.digest)].values()),
        False,
    )
    served = core.handle(MessageReceived(2, StateRequest(0, 2)))
    assert not [a for a in served if type(a) is Send and type(a.msg) is StateResponse]
