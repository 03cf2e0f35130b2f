"""The network a replica or a client runs on, from ``cluster.toml``: plain TCP, or with
``[transport] tls = true`` mutual TLS 1.3 under the same WebSocket links
(``transport.tls.TlsNetwork``), each member presenting its own certificate and key
(``keys/replica-I.crt`` / ``keys/client-NAME.crt`` and their ``.tls.key``, as ``bft-node
init --tls`` writes them) and trusting the cluster CA alone."""

from __future__ import annotations

import ssl

from node.certs import client_name, replica_name
from node.config import ClusterConfig, ConfigError
from transport import TCP, Network
from transport.tls import TlsNetwork, client_context, server_context

__all__ = ["network_for"]


def _contexts(cfg: ClusterConfig, member: str, serve: bool):
    ca, cert, key = cfg.tls_files(member)
    for path in (ca, cert, key):
        if not path.is_file():
            raise ConfigError(
                f"[transport] tls = true but {path} is missing (bft-node init --tls writes it)"
            )
    try:
        server = server_context(ca, cert, key) if serve else None
        return server, client_context(ca, cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS files of {member}: {exc}") from None


def network_for(
    cfg: ClusterConfig, *, replica: int | None = None, principal: str = "client"
) -> Network:
    """TCP, or the TLS network of replica `replica` (serving and dialing) or of client
    `principal` (dialing only) when the config asks for TLS."""
    if not cfg.tls:
        return TCP
    member = replica_name(replica) if replica is not None else client_name(principal)
    server, client = _contexts(cfg, member, serve=replica is not None)
    names = {(r.host, r.port): replica_name(r.id) for r in cfg.replicas}
    timeout = cfg.section("transport")["handshake_timeout_s"]
    return TlsNetwork(server, client, names, handshake_timeout_s=timeout)
