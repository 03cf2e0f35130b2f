"""transport: authenticated, size-checked binary frames between named endpoints.

Knows nothing of consensus and imports nothing from ``node/``. Endpoints have string
names (replicas use ``str(replica_id)``, client principals their key name, e.g.
``"client"``); keys are Ed25519: raw 32-byte public keys, and a private key object or
its 32-byte seed.

Listening (one per replica, routes /peer and /client)::

    listener = Listener(
        Identity("0", seed),
        peer_keys={"1": pk1, "2": pk2, "3": pk3},        # name -> raw public key
        client_keys={"client": client_pk},
        on_peer_frame=handle_peer,       # async (peer: str, frame) -> None; must not block
        on_client_frame=handle_client,   # async (conn: ClientConn, principal: str, frame)
        on_invalid=count_invalid,        # (source: str, reason: str) -> None
        peer_decoder=codec.decode,       # optional; raises an exception with .reason
        client_decoder=codec.decode,
        config=ListenerConfig(host="127.0.0.1", port=7000),
    )
    port = await nursery.start(listener.serve)     # port 0 -> the bound port

    await conn.send(reply_bytes)   # answer a client on its own connection; conn.closed
    conn.send_nowait(reply_bytes)  # the same without yielding (replies queued together
                                   # leave in one socket write)
    listener.client_for("client")  # newest open connection of a principal, or None

The handlers are awaited by the connection's reader before it reads on: they must be
quick (put into a bounded inbox; drop and count when full), or control frames starve.

Sending to a peer (one outbound, send-only PeerLink per remote replica)::

    link = PeerLink(Identity("0", seed), "1", pk1, host, port,
                    config=LinkConfig(keepalive_interval_s=1.0, keepalive_timeout_s=2.0),
                    on_state=lambda peer, up: ..., on_invalid=count_invalid,
                    rng=random.Random(seed))
    await nursery.start(link.run)     # connects, backs off, reconnects until cancelled
    await link.send(frame)            # LinkDown at once when not connected
    link.try_send(frame) -> bool      # no waiting; False when the outbox is full
    rtt_s = await link.ping()         # LinkDown on loss or timeout
    link.connected, await link.wait_connected(), link.close()

As a client::

    async with open_client(host, port, principal="client", private_key=seed,
                           replica="0", replica_key=pk0) as c:
        await c.send(request); reply = await c.receive()

Faults are reported as ``on_invalid(source, reason)`` with ``reason`` one of
``oversized``, ``text_frame``, ``unknown_principal``, ``bad_signature``, ``replayed``,
``handshake_timeout``, ``bad_handshake``, ``bad_version``, ``bad_upgrade``,
``unknown_route``, ``unexpected_frame``, or the decoder's own reason (``malformed`` if
it gave none); ``source`` is the authenticated name, or the remote host before
authentication. Refusals close with the codes in ``transport.frames``. Errors raised to
callers derive from ``TransportError`` (``LinkDown``, ``FrameTooLarge``,
``HandshakeFailed``, ``Refused``); code that holds nurseries should catch with
``except*``.
"""

from transport.client import ClientConfig, ClientLink, open_client
from transport.client_conn import ClientConn
from transport.errors import FrameTooLarge, HandshakeFailed, LinkDown, Refused, TransportError
from transport.frames import CLIENT_ROUTE, PEER_ROUTE, PROTOCOL_VERSION, Limits
from transport.keys import Identity, raw_public_key
from transport.listener import Listener, ListenerConfig
from transport.network import TCP, Network, TcpNetwork
from transport.peer_link import LinkConfig, PeerLink

__all__ = [
    "CLIENT_ROUTE",
    "PEER_ROUTE",
    "PROTOCOL_VERSION",
    "TCP",
    "ClientConfig",
    "ClientConn",
    "ClientLink",
    "FrameTooLarge",
    "HandshakeFailed",
    "Identity",
    "Limits",
    "LinkConfig",
    "LinkDown",
    "Listener",
    "ListenerConfig",
    "Network",
    "PeerLink",
    "Refused",
    "TcpNetwork",
    "TransportError",
    "open_client",
    "raw_public_key",
]
