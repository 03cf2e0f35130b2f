"""A Byzantine replica that attacks MAC-authenticated commits (`node/consensus/vote_auth.py`).

Its commits carry valid tags for every receiver but a garbage signature, so correct
replicas count them (the tag proves them its) while no third party can: a correct
replica that serves a commit certificate in a state transfer must build it from commits
whose signatures verify, or the laggard rejects it and accuses a correct replica (the
`accused` invariant). Some of its commits go the other way: a valid signature behind a
garbage tag for the receiver, which must fall back to the signature and count it. As
primary it also leaves one backup without some pre-prepares, so that backup lags and
fetches certificates that the others gathered with this replica's commits in them.
"""

from __future__ import annotations

from typing import Any

import attrs

from node.protocol.messages import Commit, PrePrepare

from .adversary import Adversary, Out

#: the share of its commits sent with a garbage tag and a valid signature
WRONG_TAG_P = 0.2


class TagOnlyCommits(Adversary):
    kind = "tag_only_commits"

    def send(self, dst: int, msg: Any) -> list[Out]:
        if type(msg) is Commit and msg.sender == self.me:
            if self.rng.random() < WRONG_TAG_P:
                auth = tuple(self.rng.randbytes(len(t)) for t in msg.auth)
                return [(dst, attrs.evolve(msg, auth=auth))]
            # the tags cover the payload, not the signature: they stay valid
            return [(dst, attrs.evolve(msg, signature=self.rng.randbytes(64)))]
        if type(msg) is PrePrepare and msg.sender == self.me:
            victims = self.split(("pp", msg.view, msg.seq))
            if len(victims) == 1 and dst in victims and self.rng.random() < 0.5:
                return []
        return [(dst, msg)]
