"""MAC-authenticated commits (PBFT's authenticators on the votes no third party needs).

A replica receives 3f commits per batch and verified each one's Ed25519 signature (about
120 µs here); a keyed BLAKE2b tag costs about 2 µs. So every ``Commit`` a replica sends
carries, besides its signature, one tag per replica under the key the two share
(``Signer.vote_key``: X25519 of their configured keys, HKDF with a salt of its own). A
receiver whose tag is valid counts the commit as the sender's without verifying the
signature: only the sender and the receiver hold that key. A missing or wrong tag falls
back to the signature, so a replica with an unusable key costs time, never a vote.

Prepares keep their signatures: they go into the prepared certificates of view changes,
which third parties check. A commit's signature is needed only when the commit leaves as
part of a commit certificate in a state transfer; a Byzantine sender may pair a valid
tag with a bad signature, so the serving replica sends only commits whose signatures
verify (``provable``), and the receiver checks every signature as before. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from node.protocol.crypto import MAC_LEN, Signer, VerifyCache, mac_matches, request_authenticator
from node.protocol.messages import Commit

__all__ = ["VoteAuth"]


class VoteAuth:
    """This replica's commit keys: seals the commits it sends, checks the ones it gets."""

    def __init__(self, signer: Signer, me: int, replica_keys: Mapping[int, bytes], n: int):
        self.me = me
        self.n = n
        self.replica_keys = dict(replica_keys)
        #: replica id -> the key shared with it (None for this replica or an unusable key)
        self.keys: list[bytes | None] = [
            None if j == me else signer.vote_key(replica_keys[j], me, j) for j in range(n)
        ]
        #: commits counted on their tag / on their signature
        self.counts = {"mac": 0, "signature": 0}

    def seal(self, commit: Commit) -> Commit:
        """``commit`` (signed) with its authenticator for every replica."""
        return attrs.evolve(commit, auth=request_authenticator(self.keys, commit.payload_digest))

    def authentic(self, commit: Commit) -> bool:
        """This replica's tag in ``commit`` is the sender's: the commit is the sender's."""
        auth = commit.auth
        sender = commit.sender
        if len(auth) != self.n or not 0 <= sender < self.n or sender == self.me:
            return False
        key = self.keys[sender]
        tag = auth[self.me]
        return (
            key is not None and len(tag) == MAC_LEN and mac_matches(key, commit.payload_digest, tag)
        )

    def provable(
        self, verifier: VerifyCache, commits: Iterable[Commit], quorum: int
    ) -> tuple[Commit, ...] | None:
        """``quorum`` of ``commits`` (lowest senders first) whose signatures verify, so a
        third party accepts them; None if fewer do."""
        good: list[Commit] = []
        for c in sorted(commits, key=lambda c: c.sender):
            key = self.replica_keys.get(c.sender)
            if key is not None and verifier.verify_message(key, c):
                good.append(c)
                if len(good) == quorum:
                    return tuple(good)
        return None
