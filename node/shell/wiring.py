"""Building a replica's transport from its cluster config: one outbound ``PeerLink`` per
peer and the ``Listener`` for its peers' and clients' inbound connections.

The ``[transport]`` section gives the limits and timeouts; the callbacks are the
replica's. Nothing here runs: the replica starts what these build in its nursery.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from node.config import ClusterConfig
from node.protocol import codec
from node.protocol.messages import ReadBatch, ReadRequest, Request, RequestBatch
from transport import TCP, Identity, LinkConfig, Listener, ListenerConfig, Network, PeerLink
from transport.frames import Limits

#: the most a link waits between reconnect attempts (a peer that comes back is found soon)
LINK_BACKOFF_MAX_S = 1.0


def peer_links(
    cfg: ClusterConfig,
    identity: Identity,
    peers: list[str],
    rng: random.Random,
    on_state: Callable[[str, bool], None],
    on_invalid: Callable[[str, str], None],
    network: Network = TCP,
) -> dict[str, PeerLink]:
    """One outbound link per peer over `network`, each with its own jitter generator."""
    t = cfg.section("transport")
    config = LinkConfig(
        keepalive_interval_s=t["keepalive_interval_s"],
        keepalive_timeout_s=t["keepalive_timeout_s"],
        handshake_timeout_s=t["handshake_timeout_s"],
        backoff_max_s=LINK_BACKOFF_MAX_S,
        max_frame=t["max_peer_frame"],
        max_message=t["max_peer_message"],
    )
    links = {}
    for peer in peers:
        info = cfg.replica(int(peer))
        links[peer] = PeerLink(
            identity,
            peer,
            info.public_key,
            info.host,
            info.port,
            config=config,
            on_state=on_state,
            on_invalid=on_invalid,
            rng=random.Random(rng.random()),
            dialer=network.dialer(identity.name, info.host, info.port),
        )
    return links


def listener(
    cfg: ClusterConfig,
    identity: Identity,
    peers: list[str],
    host: str,
    port: int,
    on_peer_frame: Callable[..., Any],
    on_client_frame: Callable[..., Any],
    on_invalid: Callable[[str, str], None],
) -> Listener:
    """The listener for the peers' links (any message) and clients' (requests only)."""
    t = cfg.section("transport")
    return Listener(
        identity,
        peer_keys={p: cfg.replica(int(p)).public_key for p in peers},
        client_keys={c.name: c.public_key for c in cfg.clients},
        on_peer_frame=on_peer_frame,
        on_client_frame=on_client_frame,
        on_invalid=on_invalid,
        peer_decoder=codec.decode,
        client_decoder=codec.decoder_for(Request, RequestBatch, ReadRequest, ReadBatch),
        config=ListenerConfig(
            host=host,
            port=port,
            limits=Limits(
                peer_max_frame=t["max_peer_frame"],
                client_max_frame=t["max_client_frame"],
                peer_max_message=t["max_peer_message"],
            ),
            handshake_timeout_s=t["handshake_timeout_s"],
        ),
    )
