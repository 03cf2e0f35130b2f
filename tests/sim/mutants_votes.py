"""Mutants of MAC-authenticated commits (`node/consensus/vote_auth.py` and where the core
uses it): each a small realistic bug the simulation must catch."""

from __future__ import annotations

from .mutant import Mutant

VOTE_AUTH = "node/consensus/vote_auth.py"
CRYPTO = "node/protocol/crypto.py"
CORE = "node/consensus/core.py"
TRANSFER = "node/consensus/transfer.py"

VOTE_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "commit_tag_not_compared",
        VOTE_AUTH,
        "            key is not None and len(tag) == MAC_LEN and mac_matches(key, commit.payload_digest, tag)\n",
        "            key is not None and len(tag) == MAC_LEN\n",
        "a commit with a tag of the right length counts, whatever the tag",
    ),
    Mutant(
        "served_cert_unproven",
        TRANSFER,
        "        if slot.cert_provable:\n            return True\n",
        "        if slot.commit_cert:\n            return True\n",
        "a state transfer serves the certificate the replica gathered, bad signatures and all",
    ),
    Mutant(
        "commit_key_one_direction",
        CRYPTO,
        "        low, high = sorted((me, peer))\n",
        "        low, high = me, peer\n",
        "each side of a pair derives another key, so no tag ever matches (every commit is "
        "verified by signature again)",
    ),
    Mutant(
        "wrong_tag_rejects_commit",
        CORE,
        '            counts["signature"] += 1\n',
        "            return False\n",
        "a commit whose tag is wrong is rejected instead of checked by its signature",
    ),
)
